// Grammar-constrained decoding for JSON: a JSON schema (or "any object", or a fixed list of strings)
// compiled into a TokenConstraint that masks the vocabulary each step.
//
// Supported schema keywords: type (object, array, string, number, integer, boolean, null, or a list
// of them), properties, required, additionalProperties (false, true or a schema), enum, const,
// anyOf, oneOf, allOf with one subschema, items, minItems, maxItems, minLength, maxLength, pattern
// (the regex subset of string_dfa.hpp), format (date, time, date-time, email, uuid), minimum,
// maximum, exclusiveMinimum, exclusiveMaximum (numbers), $ref to a local JSON pointer ("#",
// "#/$defs/x", "#/definitions/x", recursion allowed), $defs, definitions, boolean schemas.
// Annotations are ignored: title, description, $schema, $id, $comment, examples, default,
// deprecated, readOnly, writeOnly. Every other keyword is Error(unsupported) naming the keyword and
// its JSON pointer.
//
// What the generated text looks like:
// - No whitespace except one optional space after ':' and after ',' (compact JSON and Python's
//   default separators both match).
// - Object members come in the order of `properties`; required ones must appear, optional ones may
//   be skipped. Keys not in `properties` (when additionalProperties allows them) may come anywhere
//   between them; a declared key never appears twice, but two extra keys may repeat each other.
// - Strings are valid UTF-8; plain strings may use any JSON escape (\uHHHH without lone surrogates);
//   strings with a pattern or format use no escapes (characters that would need one are left out).
//   minLength/maxLength count code points, an escape counting as one.
// - Numbers: at most 15 digits (integer and fraction parts together), so bounds compare exactly;
//   an exponent (up to 2 digits) only for `number` without bounds. `integer` has no fraction part.
// - oneOf is generated as anyOf (validate_json checks that exactly one alternative matches).
// - enum/const values are written compactly (nlohmann's dump()).
// - Nesting deeper than SchemaLimits::max_nesting is never generated.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "slm/engine/constraint.hpp"
#include "slm/engine/grammar/grammar.hpp"
#include "slm/tokenizer/tokenizer.hpp"

namespace slm::grammar {

struct SchemaLimits {
  int32_t max_schema_depth = 64;   // nesting of the schema document itself
  size_t max_nodes = 20000;        // compiled grammar nodes
  size_t max_enum_values = 4096;   // values in one enum / choice list
  size_t max_literal_bytes = 1 << 20;  // bytes of all enum/const/choice literals together
  int32_t max_nesting = 64;        // object/array nesting of the generated document
};

// Object members are generated in the order of `properties` as the json value holds them:
// nlohmann::json sorts keys, nlohmann::ordered_json keeps the document's order.
std::shared_ptr<TokenConstraint> compile_json_schema(const nlohmann::json& schema, const Tokenizer& tokenizer,
                                                     const SchemaLimits& limits = {});
std::shared_ptr<TokenConstraint> compile_json_schema(const nlohmann::ordered_json& schema, const Tokenizer& tokenizer,
                                                     const SchemaLimits& limits = {});
// Builds (once per tokenizer, a few hundred milliseconds on a 150k vocabulary) the vocabulary
// index every constraint of this tokenizer shares; call it when a model loads so that the first
// request does not pay for it. The constraints above call it themselves.
void prepare_vocabulary(const Tokenizer& tokenizer);
// Any JSON object (response_format "json_object").
std::shared_ptr<TokenConstraint> json_object_constraint(const Tokenizer& tokenizer);
// Exactly one of `choices`, as raw text (no quotes); none may be empty.
std::shared_ptr<TokenConstraint> choice_constraint(std::vector<std::string> choices, const Tokenizer& tokenizer);

// The schema compiler alone (no tokenizer): throws as compile_json_schema does.
Grammar compile_grammar(const nlohmann::ordered_json& schema, const SchemaLimits& limits = {});

// Errors of `value` against `schema` for the same keyword subset ("/path: message" each); empty
// when valid. Unsupported keywords are reported as errors too.
std::vector<std::string> validate_json(const nlohmann::json& schema, const nlohmann::json& value);
// The same for a subschema of `root` ($ref pointers resolve against `root`).
std::vector<std::string> validate_json_at(const nlohmann::json& root, const nlohmann::json& schema, const nlohmann::json& value);

}  // namespace slm::grammar
