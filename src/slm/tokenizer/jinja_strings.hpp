// Python's str operations, on code points, as chat templates call them (as methods or through
// jinja2's filters).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace slm::jinja::py {

// chars: nullopt strips whitespace (str.isspace), else any of these code points.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// sep: nullopt splits on runs of whitespace and drops empty parts. maxsplit < 0: no limit.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit);
std::vector<std::string> splitlines(std::string_view s, bool keepends);
std::string replace(std::string_view s, std::string_view old, std::string_view replacement, int64_t count);
// Code point index of the first (last) occurrence, or -1.
int64_t find(std::string_view s, std::string_view sub);
int64_t rfind(std::string_view s, std::string_view sub);
int64_t count(std::string_view s, std::string_view sub);

std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title()
std::string capitalize(std::string_view s);  // str.capitalize()
std::string swapcase(std::string_view s);
bool is_lower(std::string_view s);
bool is_upper(std::string_view s);
bool is_alpha(std::string_view s);
bool is_digit(std::string_view s);
bool is_alnum(std::string_view s);
bool is_space(std::string_view s);

// str.center/ljust/rjust with a one-character fill.
std::string pad(std::string_view s, int64_t width, std::string_view fill, int where /* -1 left, 0 center, 1 right */);

}  // namespace slm::jinja::py
