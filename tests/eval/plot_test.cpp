// The chart writers: SVG with every point, and a PNG whose chunks, CRCs and zlib stream decode back
// to the drawn image.
#include <gtest/gtest.h>

#include <zlib.h>

#include <cstring>

#include "slm/eval/plot.hpp"
#include "slm/util/error.hpp"

using namespace slm::eval;

namespace {

uint32_t be32(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 | uint32_t(uint8_t(s[at + 2])) << 8 |
         uint8_t(s[at + 3]);
}

Plot sample_plot() {
  Plot p;
  p.title = "Quality against cost";
  p.x_label = "cost";
  p.y_label = "score";
  p.series_names = {"sweep", "single tier"};
  p.points = {{"t=1", 0.4, 0.8, 0.1, 0}, {"t=2", 0.2, 0.6, 0.05, 0}, {"small <&>", 0.05, 0.3, 0, 1}, {"big", 1.2, 0.9, 0, 1}};
  return p;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(Plot, SvgHasEveryPointAndEscapesLabels) {
  const std::string svg = render_svg(sample_plot());
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(count(svg, "<circle"), 4u);
  EXPECT_EQ(count(svg, "<polyline fill=\"none\" stroke="), 2u);  // one line per series of two points
  EXPECT_NE(svg.find("small &lt;&amp;&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("small <&>"), std::string::npos);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(Plot, PngDecodesToTheImage) {
  const Plot plot = sample_plot();
  const Image image = render_image(plot);
  // Points are drawn in their series' colour: some pixels of both colours exist, and the background is white.
  size_t blue = 0, red = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      blue += image.get(x, y) == 0x1f77b4;
      red += image.get(x, y) == 0xd62728;
    }
  }
  EXPECT_GT(blue, 50u);
  EXPECT_GT(red, 50u);
  EXPECT_EQ(image.get(1, 1), 0xffffffu);

  const std::string png = encode_png(image);
  ASSERT_GT(png.size(), 8u + 25 + 12 + 12);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  std::string idat;
  size_t at = 8;
  std::vector<std::string> types;
  while (at + 12 <= png.size()) {
    const uint32_t len = be32(png, at);
    ASSERT_LE(at + 12 + len, png.size());
    const std::string type = png.substr(at + 4, 4);
    const std::string body = png.substr(at + 4, 4 + len);
    EXPECT_EQ(be32(png, at + 8 + len), uint32_t(crc32(0, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()))))
        << type;
    if (type == "IHDR") {
      EXPECT_EQ(be32(png, at + 8), uint32_t(plot.width));
      EXPECT_EQ(be32(png, at + 12), uint32_t(plot.height));
      EXPECT_EQ(png[at + 16], 8);  // bit depth
      EXPECT_EQ(png[at + 17], 2);  // truecolor
    }
    if (type == "IDAT") idat += png.substr(at + 8, len);
    types.push_back(type);
    at += 12 + len;
  }
  EXPECT_EQ(at, png.size());
  ASSERT_EQ(types, (std::vector<std::string>{"IHDR", "IDAT", "IEND"}));
  const size_t row = size_t(plot.width) * 3 + 1;
  std::string raw(row * size_t(plot.height), '\0');
  uLongf raw_size = uLongf(raw.size());
  ASSERT_EQ(uncompress(reinterpret_cast<Bytef*>(raw.data()), &raw_size, reinterpret_cast<const Bytef*>(idat.data()), uLong(idat.size())),
            Z_OK);
  ASSERT_EQ(raw_size, raw.size());
  for (int y = 0; y < plot.height; ++y) {
    ASSERT_EQ(raw[size_t(y) * row], 0) << "filter byte of row " << y;
    ASSERT_EQ(std::memcmp(&raw[size_t(y) * row + 1], &image.rgb[size_t(y) * (row - 1)], row - 1), 0) << "row " << y;
  }
}

TEST(Plot, Base64AndEscaping) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64(std::string("\xff\x00\x10", 3)), "/wAQ");
  EXPECT_EQ(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
  EXPECT_THROW(Image(0, 10), slm::Error);
}
