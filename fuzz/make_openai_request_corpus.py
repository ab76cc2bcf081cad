#!/usr/bin/env python3
"""Writes seed request bodies for openai_request_fuzz.

Usage: fuzz/make_openai_request_corpus.py [OUT_DIR]   (default build-fuzz/corpus; creates OUT_DIR/openai_request_fuzz/)
Then: build-fuzz/fuzz/openai_request_fuzz -max_total_time=120 build-fuzz/corpus/openai_request_fuzz
Standard library only.
"""
import json
import os
import sys

user = {"role": "user", "content": "hi"}
tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}
seeds = [
    {"model": "m", "messages": [user]},
    {"messages": [user], "n": 2, "stop": ["a", "b"], "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "seed": 1,
     "presence_penalty": 0.1, "frequency_penalty": -0.1, "logprobs": True, "top_logprobs": 2, "stream": True,
     "stream_options": {"include_usage": True}},
    {"messages": [user], "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
    {"messages": [user], "response_format": {"type": "json_object"}},
    {"messages": [user, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\": \"b\"}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "r"}], "tools": [tool], "tool_choice": "auto"},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
     "tools": [tool], "tool_choice": {"type": "function", "function": {"name": "f"}}},
    {"messages": [user], "chat_template_kwargs": {"enable_thinking": False}, "reasoning_effort": "low"},
    {"prompt": "once upon", "max_tokens": 0, "echo": True, "logprobs": 3},
    {"prompt": ["a", "b"], "n": 3, "best_of": 3},
    {"prompt": [1, 2, 3]},
    {"prompt": [[1, 2], [3]]},
    {"input": ["a", "b"], "encoding_format": "base64", "dimensions": 8},
    {"content": "text", "add_special": False, "with_pieces": True},
    {"tokens": [1, 2, 3]},
]
out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build-fuzz/corpus", "openai_request_fuzz")
os.makedirs(out, exist_ok=True)
for i, seed in enumerate(seeds):
    with open(os.path.join(out, f"seed_{i:02d}.json"), "w") as f:
        json.dump(seed, f)
print(f"{len(seeds)} seeds in {out}")
