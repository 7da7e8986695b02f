"""How an item is asked: the template and the prompts of one instrument under an order design."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from psyprobe.instruments import Question
from psyprobe.prompting.conditions import DEFAULT_CONDITIONS, WORDINGS, Conditions, assign
from psyprobe.prompting.orders import Order, option_orders, order_count
from psyprobe.prompting.population import Balance, Respondent, preamble

# Each format's instruction line in study A's words (level 0) and two paraphrases of the same
# request (our wording): the ``templates`` factor. A paraphrase keeps what is asked (a choice
# among the options, with a reason) and changes only how it is said.
WORDED = {
    "likert": (
        "Instruction: Do you {inline} with the following statement? Why?",
        "Instruction: Say whether you {inline} with the statement below, and why.",
        "Instruction: Read the statement below. Do you {inline} with it? Give your reason.",
    ),
    "forced_choice": (
        "Instruction: Which option comes closest to how you usually feel or act? Why?",
        "Instruction: Pick the option that best matches how you usually feel or behave, and say "
        "why.",
        "Instruction: Of these options, which is most like the way you normally feel or act? "
        "Explain.",
    ),
    "bipolar": (
        "Instruction: Which option describes you best? Why?",
        "Instruction: Choose the option that fits you best, and say why.",
        "Instruction: Which of these options is the best description of you? Explain.",
    ),
}
assert all(len(w) == WORDINGS for w in WORDED.values())
# How the options are listed and what the answer starts with, per label style.
REPLY = {
    "numbers": "Reply with the number of your option first.",
    "letters": "Reply with the letter of your option first.",
    "text": "Reply with the text of your option first.",
}


class PromptTemplate(BaseModel):
    """Study A's wording (Li et al. 2024) with a numbered option list added.

    The numbers are the labels the model answers with: numeric labels were the most consistent in
    study B, and a single-token label is what logprob scoring reads at the answer position. The
    options (and the reply instruction) come before the statement, as in study A, so every item
    asked under one order shares the whole prompt up to its statement: a backend with prefix reuse
    computes that part once per order.
    """

    model_config = ConfigDict(frozen=True)

    name: str = "study-a"
    system: str = (
        "You are taking a test and you must answer the questions following the instructions."
    )
    likert: str = (
        "Instruction: Do you {inline} with the following statement? Why?\n"
        "Options:\n{numbered}\n"
        "Reply with the number of your option first.\n"
        "Statement: {statement}\n"
        "Answer:"
    )
    forced_choice: str = (
        "Instruction: Which option comes closest to how you usually feel or act? Why?\n"
        "Options:\n{numbered}\n"
        "Reply with the number of your option first.\n"
        "Question: {statement}\n"
        "Answer:"
    )
    bipolar: str = (
        "Instruction: Which option describes you best? Why?\n"
        "Options:\n{numbered}\n"
        "Reply with the number of your option first.\n"
        "Question: {statement}\n"
        "Answer:"
    )

    def render(
        self, question: Question, order: Order, conditions: Conditions = DEFAULT_CONDITIONS
    ) -> tuple[str, tuple[str, ...]]:
        """The user message of ``question`` under ``order`` and ``conditions``, and the labels
        it offers in the order shown."""
        texts = [question.options[i].text for i in order]
        inline = ", ".join(t.lower() for t in texts[:-1]) + f", or {texts[-1].lower()}"
        labels = labels_for(texts, conditions.labels)
        listed = [f"- {t}" if conditions.labels == "text" else f"{lab}. {t}" for lab, t in
                  zip(labels, texts, strict=True)]  # fmt: skip
        template: str = getattr(self, question.format)
        if conditions.wording:
            template = template.replace(
                WORDED[question.format][0], WORDED[question.format][conditions.wording]
            )
        template = template.replace(REPLY["numbers"], REPLY[conditions.labels])
        user = template.format(inline=inline, numbered="\n".join(listed), statement=question.text)
        return str(user), labels


def labels_for(texts: list[str], style: str) -> tuple[str, ...]:
    """What the model answers with: option numbers, letters, or the options' own text."""
    if style == "letters":
        return tuple(chr(ord("A") + pos) for pos in range(len(texts)))
    if style == "text":
        return tuple(texts)
    return tuple(str(pos + 1) for pos in range(len(texts)))


def _statement_first(body: str) -> str:
    """The same wording with the statement moved up to follow the instruction line."""
    head, rest = body.split("\n", 1)
    statement_line = next(line for line in rest.split("\n") if "{statement}" in line)
    rest = rest.replace(statement_line + "\n", "")
    return f"{head}\n{statement_line}\n{rest}"


STUDY_A = PromptTemplate()
# Statement before the options: every order of one item then shares the statement, the trie
# branching starts at the option list. Whether that moves scores is measured (bench/RESULTS.md),
# not assumed, and it is not study A's order.
STATEMENT_FIRST = PromptTemplate(
    name="statement-first",
    likert=_statement_first(STUDY_A.likert),
    forced_choice=_statement_first(STUDY_A.forced_choice),
    bipolar=_statement_first(STUDY_A.bipolar),
)
TEMPLATES = {t.name: t for t in (STUDY_A, STATEMENT_FIRST)}


@dataclass(frozen=True)
class Source:
    """Where a questionnaire prompt came from; real models ignore it, replay and sim answer
    from it."""

    instrument: str
    item: str
    order_index: int
    option_order: Order
    respondent: Respondent
    sample: int = 0
    conditions: Conditions = field(default_factory=Conditions)
    # in context: the scale values of the answers shown in the conversation, oldest first
    previous: tuple[float, ...] = ()


@dataclass(frozen=True)
class Prompt:
    """What a model is asked: system line, user message and the labels it may answer with."""

    system: str | None
    user: str
    labels: tuple[str, ...]
    source: Source | None = None
    # earlier turns of the conversation, (user, assistant), oldest first (item context)
    history: tuple[tuple[str, str], ...] = ()

    def plain_text(self) -> str:
        """For base models without a chat template: the text to continue, as study A gave
        GPT-3 (it ends with "Answer:"); earlier turns are earlier questions with their
        answers."""
        turns = [f"{asked} {answered}" for asked, answered in self.history] + [self.user]
        return "\n\n".join(([self.system] if self.system else []) + turns)

    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
        for asked, answered in self.history:
            head += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        return [*head, {"role": "user", "content": self.user}]


@dataclass(frozen=True)
class ItemPrompt:
    """A prompt together with where it came from, so its answer maps back to a scale value."""

    instrument: str
    question: Question
    order_index: int
    order: Order
    prompt: Prompt
    respondent: Respondent
    conditions: Conditions = field(default_factory=Conditions)

    def with_sample(self, sample: int) -> ItemPrompt:
        """The same prompt as the ``sample``-th draw (its source says which, for sim/replay)."""
        if self.prompt.source is None:
            return self
        source = dataclasses.replace(self.prompt.source, sample=sample)
        return dataclasses.replace(self, prompt=dataclasses.replace(self.prompt, source=source))


def build_prompts(
    instrument_id: str,
    questions: list[Question],
    design: str,
    template: PromptTemplate,
    seed: int = 0,
    respondents: list[Respondent] | None = None,
    balance: Balance = "within",
    conditions: list[Conditions] | None = None,
) -> Iterator[ItemPrompt]:
    """Every question for every respondent, under the orders and conditions ``balance`` assigns
    it (``conditions.assign``), made as they are taken: a population design of half a million
    prompts is never held whole.

    The model as itself (no persona) answers every order under every condition.
    """
    cells = conditions or [Conditions()]
    for respondent in respondents or [Respondent(0)]:
        system = respondent.system(template.system, preamble())
        mode = balance if respondent.persona is not None else "within"
        for position, question in enumerate(questions):
            orders = option_orders(design, len(question.options), seed)
            for k, c in assign(mode, respondent.index, position, len(orders), len(cells)):
                at = cells[c]
                source = Source(instrument_id, question.item_id, k, orders[k], respondent, 0, at)
                user, labels = template.render(question, orders[k], at)
                prompt = Prompt(system, user, labels, source)
                yield ItemPrompt(instrument_id, question, k, orders[k], prompt, respondent, at)


def prompt_count(
    questions: list[Question],
    design: str,
    respondents: int,
    balance: Balance = "within",
    conditions: int = 1,
) -> int:
    """How many prompts ``build_prompts`` would make (at most), counted without making them."""
    every_order = sum(order_count(design, len(q.options)) for q in questions) * conditions
    if respondents == 0:  # the model as itself answers every order
        return every_order
    return respondents * (every_order if balance == "within" else len(questions))
