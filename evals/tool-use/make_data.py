"""Writes data.jsonl for the tool-use eval: `python evals/tool-use/make_data.py`.

The items are written here, by hand (none copied from a benchmark); this script only
gives each the shared system prompt and the fields every grader reads, so that a grader
with nothing to check on an item passes it:

- calls: the tools the answer must call, names sorted and comma-separated ("" = none);
- argument, argument2: text the calls' arguments must contain ("" = anything);
- answer: text the answer's words must contain ("" = anything).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SYSTEM = (
    "You are a helpful assistant with tools. Call a tool only when it gives what the "
    "user asks for; otherwise answer in words. After a tool result, answer the user in "
    "words using the result."
)

# category single: one call of the one tool the question names, with its arguments.
SINGLE = [
    ("What's the weather in Reykjavik right now?", "get_weather", "Reykjavik", ""),
    ("Convert 250 euros to Japanese yen.", "convert_currency", "250", "JPY"),
    ("What is NVDA trading at?", "get_stock_price", "NVDA", ""),
    ("Set a timer for 12 minutes.", "set_timer", "12", ""),
    ("What time is it in the Asia/Singapore time zone?", "get_time", "Singapore", ""),
    ("How warm is it in Nairobi today?", "get_weather", "Nairobi", ""),
    ("How many Canadian dollars is 40 US dollars?", "convert_currency", "40", "CAD"),
    ("Look up the current share price of MSFT.", "get_stock_price", "MSFT", ""),
    ("Start a 5 minute timer.", "set_timer", "5", ""),
]

# category choice: the right tool among several, for a question that does not name it.
CHOICE = [
    ("Should I pack an umbrella for Dublin today?", "get_weather", "Dublin", ""),
    ("Is it too late to phone my sister in Australia/Sydney now?", "get_time", "Sydney", ""),
    ("I have 300 Swiss francs left. What are they worth in pounds sterling?",
     "convert_currency", "300", "GBP"),
    ("Did Apple (ticker AAPL) go up today? Where is it trading?", "get_stock_price", "AAPL", ""),
    ("Remind me in 20 minutes to take the pizza out.", "set_timer", "20", ""),
    ("Do I need snow boots in Montreal right now?", "get_weather", "Montreal", ""),
    ("My call is at 9 am America/New_York. What's the clock there now?",
     "get_time", "New_York", ""),
    ("Is Tesla stock (TSLA) worth buying at today's price? Check the price first.",
     "get_stock_price", "TSLA", ""),
]

# category parallel: two things asked at once, two calls expected.
PARALLEL = [
    ("What's the weather in Lisbon and in Prague?", "get_weather,get_weather", "Lisbon", "Prague"),
    ("What time is it in Europe/Berlin and in America/Chicago?",
     "get_time,get_time", "Berlin", "Chicago"),
    ("Give me the stock prices of AMZN and GOOG.",
     "get_stock_price,get_stock_price", "AMZN", "GOOG"),
    ("What's the weather in Madrid, and what time is it in Europe/Madrid?",
     "get_time,get_weather", "Madrid", "Europe/Madrid"),
    ("Convert 100 USD to EUR, and 100 USD to GBP.",
     "convert_currency,convert_currency", "EUR", "GBP"),
    ("Set one timer for 3 minutes and another for 45 minutes.",
     "set_timer,set_timer", "3", "45"),
    ("What's the weather in Toronto, and what is IBM trading at?",
     "get_stock_price,get_weather", "Toronto", "IBM"),
    ("Check the weather in Cape Town and in Buenos Aires.",
     "get_weather,get_weather", "Cape Town", "Buenos Aires"),
]

# category irrelevance: no tool fits; the answer must be words and no call.
IRRELEVANCE = [
    "Who wrote the novel Pride and Prejudice?",
    "Write a two-line poem about autumn leaves.",
    "What is 15 multiplied by 4?",
    "Give me a synonym for the word 'happy'.",
    "What is the capital city of Canada?",
    "Explain in one sentence what photosynthesis is.",
    "How many legs does a spider have?",
    "Suggest a name for a pet goldfish.",
]

# category results: the conversation holds the question, the assistant's call and the
# tool's result; the answer must be words (no call again) carrying a fact of the result.
RESULTS: list[tuple[str, str, dict[str, Any], dict[str, Any], str]] = [
    ("What's the weather in Oslo?", "get_weather", {"city": "Oslo"},
     {"city": "Oslo", "temperature_c": 14, "conditions": "light rain"}, "14"),
    ("What time is it in Asia/Tokyo?", "get_time", {"timezone": "Asia/Tokyo"},
     {"timezone": "Asia/Tokyo", "local_time": "21:45"}, "21:45"),
    ("How much is 50 US dollars in euros?", "convert_currency",
     {"amount": 50, "from_currency": "USD", "to_currency": "EUR"},
     {"amount": 50, "from_currency": "USD", "to_currency": "EUR", "result": 46.12}, "46.12"),
    ("What is NVDA trading at?", "get_stock_price", {"symbol": "NVDA"},
     {"symbol": "NVDA", "price": 131.38, "currency": "USD"}, "131.38"),
    ("Set a 10 minute timer and tell me its id.", "set_timer", {"minutes": 10},
     {"timer_id": "T-482", "minutes": 10, "status": "running"}, "T-482"),
    ("Is it warm in Lima today?", "get_weather", {"city": "Lima"},
     {"city": "Lima", "temperature_c": 22, "conditions": "cloudy"}, "22"),
    ("How hot is it in Phoenix?", "get_weather", {"city": "Phoenix"},
     {"city": "Phoenix", "temperature_f": 104, "conditions": "sunny"}, "104"),
    ("What is 1000 Japanese yen in US dollars?", "convert_currency",
     {"amount": 1000, "from_currency": "JPY", "to_currency": "USD"},
     {"amount": 1000, "from_currency": "JPY", "to_currency": "USD", "result": 6.71}, "6.71"),
    ("What time is it in Europe/London?", "get_time", {"timezone": "Europe/London"},
     {"timezone": "Europe/London", "local_time": "07:30"}, "7:30"),
]


def item(category: str, messages: list[dict[str, Any]], calls: str = "", argument: str = "",
         argument2: str = "", answer: str = "") -> dict[str, Any]:
    return {
        "category": category,
        "messages": [{"role": "system", "content": SYSTEM}, *messages],
        "calls": calls,
        "argument": argument,
        "argument2": argument2,
        "answer": answer,
    }


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def items() -> list[dict[str, Any]]:
    out = []
    for q, tool, a1, a2 in SINGLE:
        out.append(item("single", [user(q)], tool, a1, a2))
    for q, tool, a1, a2 in CHOICE:
        out.append(item("choice", [user(q)], tool, a1, a2))
    for q, tools, a1, a2 in PARALLEL:
        out.append(item("parallel", [user(q)], tools, a1, a2))
    for q in IRRELEVANCE:
        out.append(item("irrelevance", [user(q)]))
    for n, (q, tool, arguments, result, fact) in enumerate(RESULTS, 1):
        call_id = f"call_{n}"
        call = {"id": call_id, "type": "function",
                "function": {"name": tool, "arguments": json.dumps(arguments)}}
        turns = [
            user(q),
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": json.dumps(result)},
        ]
        out.append(item("results", turns, answer=fact))
    return out


if __name__ == "__main__":
    path = Path(__file__).with_name("data.jsonl")
    lines = [json.dumps({"item": i}, ensure_ascii=False) for i in items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{path}: {len(lines)} items")
