"""How an item is asked: the template and the prompts of one instrument under an order design."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from psyprobe.instruments import Question
from psyprobe.prompting.orders import Order, option_orders, order_count
from psyprobe.prompting.population import Balance, Respondent, assign_orders, preamble


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

    def render(self, question: Question, order: Order) -> str:
        texts = [question.options[i].text for i in order]
        inline = ", ".join(t.lower() for t in texts[:-1]) + f", or {texts[-1].lower()}"
        numbered = "\n".join(f"{pos + 1}. {text}" for pos, text in enumerate(texts))
        template = getattr(self, question.format)
        return str(template.format(inline=inline, numbered=numbered, statement=question.text))


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


@dataclass(frozen=True)
class Prompt:
    """What a model is asked: system line, user message and the labels it may answer with."""

    system: str | None
    user: str
    labels: tuple[str, ...]
    source: Source | None = None

    def plain_text(self) -> str:
        """For base models without a chat template: the text to continue, as study A gave
        GPT-3 (it ends with "Answer:")."""
        return f"{self.system}\n\n{self.user}" if self.system else self.user

    def messages(self) -> list[dict[str, str]]:
        head = [{"role": "system", "content": self.system}] if self.system else []
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
) -> list[ItemPrompt]:
    """Every question for every respondent, under the orders ``balance`` assigns it.

    The model as itself (no persona) answers every order of the design.
    """
    out = []
    for respondent in respondents or [Respondent(0)]:
        system = respondent.system(template.system, preamble())
        mode = balance if respondent.persona is not None else "within"
        for position, question in enumerate(questions):
            n = len(question.options)
            labels = tuple(str(i + 1) for i in range(n))
            orders = option_orders(design, n, seed)
            for k in assign_orders(mode, respondent.index, position, len(orders)):
                source = Source(instrument_id, question.item_id, k, orders[k], respondent)
                prompt = Prompt(system, template.render(question, orders[k]), labels, source)
                out.append(ItemPrompt(instrument_id, question, k, orders[k], prompt, respondent))
    return out


def prompt_count(
    questions: list[Question], design: str, respondents: int, balance: Balance = "within"
) -> int:
    """How many prompts ``build_prompts`` would make (at most), counted without making them."""
    every_order = sum(order_count(design, len(q.options)) for q in questions)
    if respondents == 0:  # the model as itself answers every order
        return every_order
    return respondents * (every_order if balance == "within" else len(questions))
