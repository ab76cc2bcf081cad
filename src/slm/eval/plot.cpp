#include "slm/eval/plot.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "slm/util/error.hpp"

namespace slm::eval {

namespace {

constexpr uint32_t kPalette[] = {0x1f77b4, 0xd62728, 0x2ca02c, 0x9467bd, 0xff7f0e, 0x8c564b, 0xe377c2, 0x17becf};
uint32_t series_color(int series) { return kPalette[size_t(std::max(series, 0)) % (sizeof(kPalette) / sizeof(kPalette[0]))]; }

std::string hex_color(uint32_t c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%06x", c & 0xffffffu);
  return buf;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// A tick label: as few digits as the step needs.
std::string tick_text(double v, double step) {
  int decimals = 0;
  while (decimals < 6 && std::fabs(step * std::pow(10.0, decimals) - std::round(step * std::pow(10.0, decimals))) > 1e-6) {
    ++decimals;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return buf;
}

double nice_step(double span, int ticks) {
  const double raw = span / std::max(1, ticks);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (raw <= m * mag) return m * mag;
  }
  return 10 * mag;
}

// The geometry both renderers share: axis ranges, ticks, and data-to-pixel mapping.
struct Layout {
  double left = 72, right = 190, top = 40, bottom = 56;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1, x_step = 0.2, y_step = 0.2;
  int width = 0, height = 0;

  explicit Layout(const Plot& p) : width(p.width), height(p.height) {
    if (p.points.empty()) return;
    double xmin = p.points[0].x, xmax = xmin, ymin = 0, ymax = 1;
    for (const auto& pt : p.points) {
      xmin = std::min(xmin, pt.x);
      xmax = std::max(xmax, pt.x);
      ymin = std::min(ymin, pt.y - pt.y_error);
      ymax = std::max(ymax, pt.y + pt.y_error);
    }
    if (xmax - xmin < 1e-12) {
      const double pad = std::fabs(xmax) > 0 ? std::fabs(xmax) * 0.5 : 1.0;
      xmin -= pad;
      xmax += pad;
    }
    const double pad = (xmax - xmin) * 0.08;
    xmin = std::max(xmin >= 0 ? 0.0 : -1e300, xmin - pad);
    xmax += pad;
    x_step = nice_step(xmax - xmin, 5);
    x0 = std::floor(xmin / x_step) * x_step;
    x1 = std::ceil(xmax / x_step) * x_step;
    y_step = nice_step(ymax - ymin, 5);
    y0 = std::floor(ymin / y_step) * y_step;
    y1 = std::ceil(ymax / y_step) * y_step;
  }
  double px(double x) const { return left + (x - x0) / (x1 - x0) * (width - left - right); }
  double py(double y) const { return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom); }
  template <class F>
  void ticks(double a, double b, double step, F f) const {
    for (int i = 0;; ++i) {
      const double v = a + i * step;
      if (v > b + step * 1e-6 || i > 100) break;
      f(v);
    }
  }
};

// Series in order of x, as the line joins them.
std::map<int, std::vector<const PlotPoint*>> by_series(const Plot& p) {
  std::map<int, std::vector<const PlotPoint*>> out;
  for (const auto& pt : p.points) out[pt.series].push_back(&pt);
  for (auto& [s, v] : out) std::stable_sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->x < b->x; });
  return out;
}

std::string series_name(const Plot& p, int s) {
  return size_t(s) < p.series_names.size() ? p.series_names[size_t(s)] : "series " + std::to_string(s);
}

// 3x5 pixel glyphs, one row of three bits each (4 = left column).
struct Glyph {
  char c;
  uint8_t rows[5];
};
constexpr Glyph kFont[] = {
    {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}},
    {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}},
    {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'A', {2, 5, 7, 5, 5}}, {'B', {6, 5, 6, 5, 6}},
    {'C', {3, 4, 4, 4, 3}}, {'D', {6, 5, 5, 5, 6}}, {'E', {7, 4, 6, 4, 7}}, {'F', {7, 4, 6, 4, 4}},
    {'G', {3, 4, 5, 5, 3}}, {'H', {5, 5, 7, 5, 5}}, {'I', {7, 2, 2, 2, 7}}, {'J', {1, 1, 1, 5, 2}},
    {'K', {5, 5, 6, 5, 5}}, {'L', {4, 4, 4, 4, 7}}, {'M', {5, 7, 7, 5, 5}}, {'N', {6, 5, 5, 5, 5}},
    {'O', {2, 5, 5, 5, 2}}, {'P', {6, 5, 6, 4, 4}}, {'Q', {2, 5, 5, 6, 3}}, {'R', {6, 5, 6, 5, 5}},
    {'S', {3, 4, 2, 1, 6}}, {'T', {7, 2, 2, 2, 2}}, {'U', {5, 5, 5, 5, 7}}, {'V', {5, 5, 5, 5, 2}},
    {'W', {5, 5, 7, 7, 5}}, {'X', {5, 5, 2, 5, 5}}, {'Y', {5, 5, 2, 2, 2}}, {'Z', {7, 1, 2, 4, 7}},
    {'.', {0, 0, 0, 0, 2}}, {'-', {0, 0, 7, 0, 0}}, {'+', {0, 2, 7, 2, 0}}, {'=', {0, 7, 0, 7, 0}},
    {':', {0, 2, 0, 2, 0}}, {'/', {1, 1, 2, 4, 4}}, {'_', {0, 0, 0, 0, 7}}, {'(', {1, 2, 2, 2, 1}},
    {')', {4, 2, 2, 2, 4}}, {',', {0, 0, 0, 2, 4}}, {'$', {3, 6, 2, 3, 6}}, {'%', {5, 1, 2, 4, 5}},
    {'@', {2, 5, 7, 4, 3}}, {'[', {3, 2, 2, 2, 3}}, {']', {6, 2, 2, 2, 6}}, {'>', {4, 2, 1, 2, 4}},
    {'<', {1, 2, 4, 2, 1}}, {'?', {6, 1, 2, 0, 2}}, {'*', {0, 5, 2, 5, 0}}, {'#', {5, 7, 5, 7, 5}},
    {'!', {2, 2, 2, 0, 2}}, {'\'', {2, 2, 0, 0, 0}}, {'"', {5, 5, 0, 0, 0}}, {' ', {0, 0, 0, 0, 0}},
};

const Glyph& glyph(char c) {
  if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
  for (const auto& g : kFont) {
    if (g.c == c) return g;
  }
  static const Glyph unknown = {'?', {6, 1, 2, 0, 2}};
  return unknown;
}

class Canvas {
 public:
  explicit Canvas(Image& image) : img_(image) {}
  void dot(int x, int y, uint32_t c) {
    if (x >= 0 && y >= 0 && x < img_.width && y < img_.height) img_.set(x, y, c);
  }
  void line(double xa, double ya, double xb, double yb, uint32_t c, int thickness = 1) {
    const int steps = int(std::max(std::fabs(xb - xa), std::fabs(yb - ya))) + 1;
    for (int i = 0; i <= steps; ++i) {
      const double t = double(i) / steps;
      const int x = int(std::lround(xa + (xb - xa) * t)), y = int(std::lround(ya + (yb - ya) * t));
      for (int dx = 0; dx < thickness; ++dx) {
        for (int dy = 0; dy < thickness; ++dy) dot(x + dx - thickness / 2, y + dy - thickness / 2, c);
      }
    }
  }
  void disc(double cx, double cy, double r, uint32_t c) {
    for (int y = int(cy - r) - 1; y <= int(cy + r) + 1; ++y) {
      for (int x = int(cx - r) - 1; x <= int(cx + r) + 1; ++x) {
        if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r) dot(x, y, c);
      }
    }
  }
  void rect(int x0, int y0, int x1, int y1, uint32_t c) {
    for (int y = y0; y < y1; ++y) {
      for (int x = x0; x < x1; ++x) dot(x, y, c);
    }
  }
  // Text with its top-left corner at (x, y); glyphs of 3x5 cells, `scale` pixels each.
  static int text_width(const std::string& s, int scale) { return int(s.size()) * 4 * scale - scale; }
  void text(double x, double y, const std::string& s, uint32_t c, int scale = 2) {
    int cx = int(x);
    for (char ch : s) {
      const Glyph& g = glyph(ch);
      for (int row = 0; row < 5; ++row) {
        for (int col = 0; col < 3; ++col) {
          if (g.rows[row] & (4 >> col)) rect(cx + col * scale, int(y) + row * scale, cx + (col + 1) * scale, int(y) + (row + 1) * scale, c);
        }
      }
      cx += 4 * scale;
    }
  }
  void text_vertical(double x, double y, const std::string& s, uint32_t c, int scale = 2) {
    // Bottom to top, for the y axis title: each glyph rotated a quarter turn counter-clockwise.
    int cy = int(y);
    for (char ch : s) {
      const Glyph& g = glyph(ch);
      for (int row = 0; row < 5; ++row) {
        for (int col = 0; col < 3; ++col) {
          if (!(g.rows[row] & (4 >> col))) continue;
          const int px = int(x) + row * scale, py = cy - (col + 1) * scale;
          rect(px, py, px + scale, py + scale, c);
        }
      }
      cy -= 4 * scale;
    }
  }

 private:
  Image& img_;
};

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string base64(const std::string& bytes) {
  static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 | uint8_t(bytes[i + 2]);
    for (int k = 3; k >= 0; --k) out += table[(v >> (6 * k)) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += table[(v >> 18) & 63];
    out += table[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? table[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string render_svg(const Plot& p) {
  const Layout L(p);
  std::string s;
  s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(p.width) + "\" height=\"" +
       std::to_string(p.height) + "\" viewBox=\"0 0 " + std::to_string(p.width) + " " + std::to_string(p.height) +
       "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  s += "<text x=\"" + num(p.width / 2.0) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + xml_escape(p.title) + "</text>\n";
  // Grid and ticks.
  L.ticks(L.x0, L.x1, L.x_step, [&](double v) {
    const std::string x = num(L.px(v));
    s += "<line x1=\"" + x + "\" y1=\"" + num(L.py(L.y0)) + "\" x2=\"" + x + "\" y2=\"" + num(L.py(L.y1)) +
         "\" stroke=\"#e5e5e5\"/>\n";
    s += "<text x=\"" + x + "\" y=\"" + num(L.py(L.y0) + 16) + "\" text-anchor=\"middle\">" + tick_text(v, L.x_step) + "</text>\n";
  });
  L.ticks(L.y0, L.y1, L.y_step, [&](double v) {
    const std::string y = num(L.py(v));
    s += "<line x1=\"" + num(L.px(L.x0)) + "\" y1=\"" + y + "\" x2=\"" + num(L.px(L.x1)) + "\" y2=\"" + y +
         "\" stroke=\"#e5e5e5\"/>\n";
    s += "<text x=\"" + num(L.px(L.x0) - 6) + "\" y=\"" + num(L.py(v) + 4) + "\" text-anchor=\"end\">" + tick_text(v, L.y_step) + "</text>\n";
  });
  s += "<polyline points=\"" + num(L.px(L.x0)) + "," + num(L.py(L.y1)) + " " + num(L.px(L.x0)) + "," + num(L.py(L.y0)) + " " +
       num(L.px(L.x1)) + "," + num(L.py(L.y0)) + "\" fill=\"none\" stroke=\"#333333\"/>\n";
  s += "<text x=\"" + num((L.px(L.x0) + L.px(L.x1)) / 2) + "\" y=\"" + num(p.height - 14.0) + "\" text-anchor=\"middle\">" +
       xml_escape(p.x_label) + "</text>\n";
  s += "<text transform=\"translate(18," + num((L.py(L.y0) + L.py(L.y1)) / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
       xml_escape(p.y_label) + "</text>\n";
  int legend = 0;
  for (const auto& [series, pts] : by_series(p)) {
    const std::string color = hex_color(series_color(series));
    if (pts.size() > 1) {
      s += "<polyline fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\" points=\"";
      for (const auto* pt : pts) s += num(L.px(pt->x)) + "," + num(L.py(pt->y)) + " ";
      s += "\"/>\n";
    }
    for (const auto* pt : pts) {
      const std::string x = num(L.px(pt->x));
      if (pt->y_error > 0) {
        s += "<line x1=\"" + x + "\" y1=\"" + num(L.py(pt->y - pt->y_error)) + "\" x2=\"" + x + "\" y2=\"" +
             num(L.py(pt->y + pt->y_error)) + "\" stroke=\"" + color + "\" stroke-opacity=\"0.5\"/>\n";
      }
      s += "<circle cx=\"" + x + "\" cy=\"" + num(L.py(pt->y)) + "\" r=\"4.5\" fill=\"" + color + "\"><title>" +
           xml_escape(pt->label) + "</title></circle>\n";
      s += "<text x=\"" + num(L.px(pt->x) + 7) + "\" y=\"" + num(L.py(pt->y) - 7) + "\" font-size=\"10\" fill=\"#444444\">" +
           xml_escape(pt->label) + "</text>\n";
    }
    const double ly = L.top + 10 + 18 * legend++;
    s += "<rect x=\"" + num(p.width - L.right + 16) + "\" y=\"" + num(ly - 9) + "\" width=\"10\" height=\"10\" fill=\"" + color + "\"/>\n";
    s += "<text x=\"" + num(p.width - L.right + 32) + "\" y=\"" + num(ly) + "\">" + xml_escape(series_name(p, series)) + "</text>\n";
  }
  s += "</svg>\n";
  return s;
}

Image::Image(int w, int h) : width(w), height(h), rgb(size_t(w) * size_t(h) * 3, 255) {
  if (w <= 0 || h <= 0 || w > 8192 || h > 8192) fail(ErrorKind::invalid_argument, "image size {}x{} out of range", w, h);
}
void Image::set(int x, int y, uint32_t c) {
  uint8_t* p = &rgb[(size_t(y) * size_t(width) + size_t(x)) * 3];
  p[0] = uint8_t(c >> 16);
  p[1] = uint8_t(c >> 8);
  p[2] = uint8_t(c);
}
uint32_t Image::get(int x, int y) const {
  const uint8_t* p = &rgb[(size_t(y) * size_t(width) + size_t(x)) * 3];
  return uint32_t(p[0]) << 16 | uint32_t(p[1]) << 8 | p[2];
}

Image render_image(const Plot& p) {
  const Layout L(p);
  Image img(p.width, p.height);
  Canvas c(img);
  const uint32_t grid = 0xe5e5e5, ink = 0x333333;
  c.text(p.width / 2.0 - Canvas::text_width(p.title, 2) / 2.0, 12, p.title, ink);
  L.ticks(L.x0, L.x1, L.x_step, [&](double v) {
    c.line(L.px(v), L.py(L.y0), L.px(v), L.py(L.y1), grid);
    const std::string t = tick_text(v, L.x_step);
    c.text(L.px(v) - Canvas::text_width(t, 2) / 2.0, L.py(L.y0) + 8, t, ink);
  });
  L.ticks(L.y0, L.y1, L.y_step, [&](double v) {
    c.line(L.px(L.x0), L.py(v), L.px(L.x1), L.py(v), grid);
    const std::string t = tick_text(v, L.y_step);
    c.text(L.px(L.x0) - 8 - Canvas::text_width(t, 2), L.py(v) - 5, t, ink);
  });
  c.line(L.px(L.x0), L.py(L.y0), L.px(L.x1), L.py(L.y0), ink);
  c.line(L.px(L.x0), L.py(L.y0), L.px(L.x0), L.py(L.y1), ink);
  c.text((L.px(L.x0) + L.px(L.x1)) / 2 - Canvas::text_width(p.x_label, 2) / 2.0, p.height - 22, p.x_label, ink);
  c.text_vertical(10, (L.py(L.y0) + L.py(L.y1)) / 2 + Canvas::text_width(p.y_label, 2) / 2.0, p.y_label, ink);
  int legend = 0;
  for (const auto& [series, pts] : by_series(p)) {
    const uint32_t color = series_color(series);
    for (size_t i = 1; i < pts.size(); ++i) {
      c.line(L.px(pts[i - 1]->x), L.py(pts[i - 1]->y), L.px(pts[i]->x), L.py(pts[i]->y), color, 2);
    }
    for (const auto* pt : pts) {
      if (pt->y_error > 0) c.line(L.px(pt->x), L.py(pt->y - pt->y_error), L.px(pt->x), L.py(pt->y + pt->y_error), color);
      c.disc(L.px(pt->x), L.py(pt->y), 4.5, color);
    }
    const int ly = int(L.top) + 4 + 18 * legend++;
    c.rect(p.width - int(L.right) + 16, ly, p.width - int(L.right) + 26, ly + 10, color);
    c.text(p.width - L.right + 32, ly, series_name(p, series), ink);
  }
  return img;
}

std::string encode_png(const Image& image) {
  auto be32 = [](std::string& out, uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out += char((v >> s) & 0xff);
  };
  auto chunk = [&](std::string& out, const char* type, const std::string& data) {
    be32(out, uint32_t(data.size()));
    const std::string body = std::string(type, 4) + data;
    out += body;
    be32(out, uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()))));
  };
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  be32(ihdr, uint32_t(image.width));
  be32(ihdr, uint32_t(image.height));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, truecolor, deflate, adaptive filters, no interlace
  chunk(png, "IHDR", ihdr);
  // Each row: filter type 0 (none), then its pixels.
  const size_t row = size_t(image.width) * 3;
  std::string raw;
  raw.reserve((row + 1) * size_t(image.height));
  for (int y = 0; y < image.height; ++y) {
    raw += '\0';
    raw.append(reinterpret_cast<const char*>(&image.rgb[size_t(y) * row]), row);
  }
  uLongf size = compressBound(uLong(raw.size()));
  std::string compressed(size, '\0');
  if (compress2(reinterpret_cast<Bytef*>(compressed.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                uLong(raw.size()), 9) != Z_OK) {
    fail(ErrorKind::internal, "zlib failed to compress a {}x{} image", image.width, image.height);
  }
  compressed.resize(size);
  chunk(png, "IDAT", compressed);
  chunk(png, "IEND", "");
  return png;
}

}  // namespace slm::eval
