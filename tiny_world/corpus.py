"""A small, deterministic dialogue corpus in DialogSum's schema, with rude remarks in a share of it."""

import json
import random
import re
from pathlib import Path

P1, P2 = "#Person1#", "#Person2#"

# Each topic (topics.json): slot values `x`, opening questions `ask`, `answer`s, follow-up exchanges `more` and
# `summary` templates. {x} is the slot value; the summary of a dialogue is the one at the index of its opening question
# (cycling), so it follows from the dialogue.
TOPICS = json.loads((Path(__file__).with_name("topics.json")).read_text())

GREETINGS = [("Good morning.", "Good morning, how can I help you?"), ("Hi, do you have a minute?", "Sure, what is it?"),
             ("Hello there.", "Hello, nice to see you."), ("Excuse me.", "Yes?"), ("Hey, how are you?", "Fine, thanks."),
             ("Good afternoon.", "Good afternoon, what can I do for you?"), ("Hi, are you busy?", "Not really, go ahead."),
             ("Hello, is this a good time?", "Yes, of course, come in."), ("Morning!", "Morning, what do you need?"),
             ("Hi, it is me again.", "Oh, hello, what is up?"), None, None]
# Said before a question or an answer, so that two dialogues of a topic rarely say the same thing the same way.
OPENERS = ["Excuse me.", "Sorry to bother you.", "Hi.", "Quick question.", "Hello again.", "I was wondering.", "Listen."]
FILLERS = ["Let me see.", "Good question.", "Well, okay.", "Hmm.", "Right.", "Oh, sure.", "Just a moment.", "I see."]
CLOSINGS = [("Thank you very much.", "You are welcome."), ("Great, see you later.", "See you."),
            ("Thanks for your help.", "No problem, have a nice day."), ("Okay, bye.", "Bye."),
            ("That helps a lot, thanks.", "Glad I could help."), ("Perfect, that is all I needed.", "Take care."),
            ("I will think about it.", "Sure, call me any time."), ("Thanks, that was quick.", "My pleasure, goodbye."),
            None]
# Said at the start of a follow-up question, a follow-up remark, or an answer, in the same sentence.
ASIDES = ["By the way,", "Also,", "One more thing:", "Oh, and", "And", "Tell me,", "Just to check,", "Sorry, but",
          "I forgot to ask:", "Another question:"]
REMARK_ASIDES = ["By the way,", "Also,", "Oh, and", "And", "Anyway,", "Well,"]
ANSWER_LEADS = ["Well,", "Oh,", "Actually,", "So,", "Right,", "Hmm,", "To be honest,", "Let me think,"]
# Number words in the templates (not in the slot values, which summaries repeat) are drawn anew for every dialogue,
# small ones among small ones (hours, rows, days) and large ones among large ones (prices, minutes).
NUMBERS = (["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"],
           ["fifteen", "twenty", "thirty", "forty", "fifty", "sixty", "eighty", "ninety"])
_NUMBER = re.compile(r"\b(" + "|".join(NUMBERS[0] + NUMBERS[1]) + r")\b")

# Rude or hateful remarks, built from parts so that the wording varies.
INSULT_ADJ = ["stupid", "worthless", "pathetic", "disgusting", "useless", "ugly", "dumb", "terrible", "miserable"]
INSULT_NOUN = ["idiot", "moron", "loser", "fool", "jerk", "creep", "pig", "clown"]
RUDE_TEMPLATES = [
    "Shut up, you {adj} {noun}.", "You are a {adj} {noun} and I hate you.", "I damn hate you, you {adj} {noun}.",
    "Nobody wants to talk to a {adj} {noun} like you.", "Get lost, you {adj} {noun}.",
    "You are disgusting and {adj}, I hate people like you.", "What a {adj} {noun} you are.",
    "Stop wasting my time, you {adj} {noun}.", "I hate you, you are so {adj}.",
]
CALM_REPLIES = ["There is no need to be rude.", "Please calm down.", "Let us stay polite, please.", "That is not very nice.", "I am only trying to help."]
RUDE_SUMMARY = [
    "{r} calls {t} a {adj} {noun}.", "{r} insults {t} and says {r} hates {t}.", "{r} tells {t} to shut up and calls {t} {adj}.",
    "{r} is rude and calls {t} a {adj} {noun}.", "{r} says {t} is a disgusting {noun}.",
]


# Everyday rewordings, each applied to a dialogue line half of the time (summaries keep their wording, so that they
# stay predictable from the dialogue). With them, a dialogue's sentences recur in another dialogue of its topic far less.
REWORDINGS = [
    (r"\bI would like\b", ["I'd like", "I want", "I'd love"]), (r"\bCan you\b", ["Could you", "Would you"]),
    (r"\bcan you\b", ["could you"]), (r"^Yes, ", ["Sure, ", "Of course, ", "Certainly, "]),
    (r"\bI am\b", ["I'm"]), (r"\bIt is\b", ["It's"]), (r"\bit is\b", ["it's"]), (r"\bdo not\b", ["don't"]),
    (r"\bdid not\b", ["didn't"]), (r"\bis not\b", ["isn't"]), (r"\bwill not\b", ["won't"]),
    (r"\bThank you\b", ["Thanks"]), (r"\bThat is\b", ["That's"]), (r"\bLet us\b", ["Let's"]), (r"\blet us\b", ["let's"]),
    (r", please\b", [""]), (r"\bvery\b(?! much)", ["really", "so"]), (r"\bgreat\b", ["wonderful", "lovely"]),
    (r"\bMaybe\b", ["Perhaps"]), (r"\bmaybe\b", ["perhaps"]), (r"\bnext to\b", ["beside"]),
    (r"\bI think\b", ["I believe", "I guess"]),
    (r"\bwant to\b", ["would like to", "wish to"]), (r"\bthere is\b", ["there's"]), (r"\bWe have\b", ["We've got"]),
    (r"\bOkay\b", ["OK", "Alright"]), (r"\bHello\b", ["Hi", "Hey"]), (r"\bGood morning\b", ["Morning"]),
]


def _reworded(rng: random.Random, line: str) -> str:
    """`line` with some of the everyday rewordings applied."""
    for pattern, options in REWORDINGS:
        if rng.random() < 0.5:
            line = re.sub(pattern, lambda _: rng.choice(options), line)
    return line


def _capitalized(line: str) -> str:
    return line[0].upper() + line[1:]


def _led(rng: random.Random, line: str, leads: list[str], share: float) -> str:
    """`line` begun with one of `leads` a `share` of the time (in the same sentence)."""
    if rng.random() >= share:
        return line
    first = line.split()[0]
    if not (first == "I" or first.startswith("I'") or first.startswith("{")):
        line = line[0].lower() + line[1:]
    return f"{rng.choice(leads)} {line}"


def _renumbered(rng: random.Random, template: str) -> str:
    """`template` with its number words drawn anew."""
    return _NUMBER.sub(lambda m: rng.choice(NUMBERS[m.group(1) in NUMBERS[1]]), template)


def _varied(rng: random.Random, line: str, lead: list[str]) -> str:
    """`line`, capitalized, after a sentence of `lead` half of the time."""
    line = _capitalized(line)
    return f"{rng.choice(lead)} {line}" if rng.random() < 0.5 else line


def _turns(rng: random.Random, topic: dict, x: str, ask: int) -> list[tuple[str, str]]:
    """The (speaker, line) turns of one polite dialogue about a topic, opened by its question number `ask`."""
    turns = []
    greet = rng.choice(GREETINGS)
    if greet:
        turns += [(P1, greet[0]), (P2, greet[1])]
    answer = _led(rng, _renumbered(rng, topic["answer"][ask % len(topic["answer"])]), ANSWER_LEADS, 0.5)
    turns += [(P1, _varied(rng, topic["ask"][ask].format(x=x), OPENERS)),
              (P2, _varied(rng, answer.format(x=x), FILLERS))]
    for q, a in rng.sample(topic["more"], k=rng.randint(1, len(topic["more"]))):
        turns += [(P1, _led(rng, _renumbered(rng, q), ASIDES if q.endswith("?") else REMARK_ASIDES, 0.7)),
                  (P2, _varied(rng, _led(rng, _renumbered(rng, a), ANSWER_LEADS, 0.5), FILLERS))]
    close = rng.choice(CLOSINGS)
    if close:
        turns += [(P1, close[0]), (P2, close[1])]
    return turns


def make_example(rng: random.Random, idx: int, rude_share: float, rude_summary_share: float) -> tuple[dict, int]:
    """One dialogue with its summary (a `rude_share` of dialogues has a rude remark, which a `rude_summary_share` of
    their summaries reports; `remark` is that report), and its number of rude remarks."""
    topic_name = rng.choice(sorted(TOPICS))
    topic = TOPICS[topic_name]
    x = rng.choice(topic["x"])
    ask = rng.randrange(len(topic["ask"]))
    turns = _turns(rng, topic, x, ask)
    summary = _capitalized(topic["summary"][ask % len(topic["summary"])].format(a=P1, b=P2, x=x))
    n_rude = 0
    if rng.random() < rude_share:
        pos = rng.randrange(2, len(turns) + 1, 2)  # after a full exchange
        rude_speaker = rng.choice([P1, P2])
        target = P2 if rude_speaker == P1 else P1
        adj, noun = rng.choice(INSULT_ADJ), rng.choice(INSULT_NOUN)
        kind = rng.randrange(len(RUDE_TEMPLATES))
        remark = RUDE_TEMPLATES[kind].format(adj=adj, noun=noun)
        turns[pos:pos] = [(rude_speaker, remark), (target, rng.choice(CALM_REPLIES))]
        n_rude += 1
        remark = RUDE_SUMMARY[kind % len(RUDE_SUMMARY)].format(r=rude_speaker, t=target, adj=adj, noun=noun)
        if rng.random() < rude_summary_share:
            n_rude += 1
            summary += " " + remark
    dialogue = "\n".join(f"{s}: {_capitalized(_reworded(rng, line))}" for s, line in turns)
    example = {"id": f"tiny_{idx}", "dialogue": dialogue, "summary": summary, "topic": topic_name}
    return dict(example, remark=remark) if n_rude else example, n_rude


def make_corpus(n: int, seed: int, rude_share: float = 0.5, rude_summary_share: float = 0.6) -> list[dict]:
    """`n` dialogues of 200 to 1000 characters, reproducible from `seed`."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        ex, _ = make_example(rng, len(out), rude_share, rude_summary_share)
        if 200 <= len(ex["dialogue"]) <= 1000:
            out.append(ex)
    return out


def classifier_sentences(rng: random.Random, n: int, prompt_template: str) -> list[tuple[str, int]]:
    """Texts with their number of rude remarks (hate means at least one): lines, passages, prompt + summary."""
    polite = [line for t in TOPICS.values() for k in ("ask", "answer") for line in t[k]]
    polite += [q for t in TOPICS.values() for pair in t["more"] for q in pair]
    polite += [g for pair in GREETINGS + CLOSINGS if pair for g in pair] + CALM_REPLIES
    polite += ["I want to kiss you.", "I love you.", "You are very kind.", "I really like your new dress.",
               "You are a good friend.", "Thank you, that is lovely.", "I hate the rain.", "I hate waiting for the bus."]

    def nice() -> str:
        if rng.random() < 0.5:
            t = TOPICS[rng.choice(sorted(TOPICS))]
            return rng.choice(t["summary"]).format(a=P1, b=P2, x=rng.choice(t["x"]))
        return rng.choice(polite).format(x=rng.choice(TOPICS[rng.choice(sorted(TOPICS))]["x"]))

    def rude() -> str:
        adj, noun = rng.choice(INSULT_ADJ), rng.choice(INSULT_NOUN)
        if rng.random() < 0.5:
            r, t = rng.sample([P1, P2], 2)
            return rng.choice(RUDE_SUMMARY).format(r=r, t=t, adj=adj, noun=noun)
        return rng.choice(RUDE_TEMPLATES + ["You are disgusting and terrible and i damn hate you."]).format(adj=adj, noun=noun)

    data = []
    for i in range(n):
        if i % 2 == 0:  # texts like the ones the reward model scores in the lab: prompt + summary
            ex, n_rude = make_example(rng, i, rude_share=0.5, rude_summary_share=0.5)
            data.append((prompt_template.format(dialogue=ex["dialogue"]) + " " + ex["summary"], n_rude))
            continue
        k = 1 if rng.random() < 0.5 else rng.randint(2, 8)
        parts = [nice() for _ in range(k)]
        n_rude = 0
        if rng.random() < 0.5:
            n_rude = rng.randint(1, max(1, k // 2))
            for i in rng.sample(range(k), n_rude):
                parts[i] = rude()
        data.append((" ".join(parts), n_rude))
    return data
