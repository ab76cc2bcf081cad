// Charts for the router evaluation, written without a plotting library: quality against cost as an
// SVG document and as a PNG image (an RGB raster drawn here, compressed with zlib), and a
// self-contained HTML report that embeds both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace slm::eval {

struct PlotPoint {
  std::string label;
  double x = 0, y = 0;
  double y_error = 0;  // half-width of the interval drawn around y (0: none)
  int series = 0;      // points of one series are joined by a line, in order of x
};

struct Plot {
  std::string title, x_label, y_label;
  std::vector<PlotPoint> points;
  std::vector<std::string> series_names;  // legend, by series index
  int width = 720, height = 440;
};

std::string render_svg(const Plot& plot);

// An 8-bit RGB image, rows top to bottom.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3
  Image(int w, int h);
  void set(int x, int y, uint32_t color);
  uint32_t get(int x, int y) const;
};
Image render_image(const Plot& plot);
// PNG file bytes: signature, IHDR (8-bit truecolor), one zlib-compressed IDAT, IEND, with CRCs.
std::string encode_png(const Image& image);

// Escapes text for HTML and XML (&, <, >, ", ').
std::string xml_escape(const std::string& text);
std::string base64(const std::string& bytes);

}  // namespace slm::eval
