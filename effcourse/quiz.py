"""Quizzes on trade-offs that work without a kernel, without JavaScript and without the network.

A quiz is plain HTML: the question, then one collapsed `<details>` block per answer. Opening an
answer shows whether it is the one the course would pick, why, and the explanation of the whole
question. It renders the same in JupyterLab (even in an untrusted notebook, whose scripts do not
run: `details` and `summary` pass JupyterLab's HTML sanitizer), on the Jupyter Book website, and
on GitHub; a terminal gets the question and the answers without their verdicts.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

# Tags a quiz uses: each one passes JupyterLab's sanitizer (tests/test_quiz.py checks the output).
TAGS = ("div", "p", "b", "details", "summary", "span")


@dataclass(frozen=True)
class Answer:
    """One answer: its text, whether the course would pick it, and why (shown once opened)."""

    text: str
    right: bool
    why: str


@dataclass(frozen=True)
class Quiz:
    """A question with answers; `explanation` is shown under whichever answer the learner opens."""

    question: str
    answers: tuple[Answer, ...]
    explanation: str = ""
    letters: tuple[str, ...] = field(default=tuple("ABCDEFGH"), repr=False)

    def __post_init__(self):
        if not any(a.right for a in self.answers):
            raise ValueError("A quiz needs at least one right answer.")
        if not 2 <= len(self.answers) <= len(self.letters):
            raise ValueError(f"A quiz has 2 to {len(self.letters)} answers, not {len(self.answers)}.")

    def __str__(self) -> str:
        lines = [f"Quiz: {self.question}"]
        lines += [f"  {letter}. {a.text}" for letter, a in zip(self.letters, self.answers)]
        return "\n".join(lines + ["(Open the notebook in JupyterLab or on the course website to answer.)"])

    def __repr__(self) -> str:  # the text form a notebook stores must not give the answers away
        return str(self)

    def _repr_html_(self) -> str:
        esc = html.escape
        parts = [f'<div class="effcourse-quiz"><p><b>Quiz.</b> {esc(self.question)}</p>']
        for letter, answer in zip(self.letters, self.answers):
            verdict = "Yes." if answer.right else "Not the best answer."
            colour = "#1a7f37" if answer.right else "#b35900"
            parts.append(
                f'<details class="effcourse-answer"><summary>{letter}. {esc(answer.text)}</summary>'
                f'<div style="margin: 4px 0 8px 18px">'
                f'<p><b><span style="color: {colour}">{verdict}</span></b> {esc(answer.why)}</p>'
                + (f'<p>{esc(self.explanation)}</p>' if self.explanation else "")
                + "</div></details>")
        parts.append('<p><span style="color: #6e7781">Click an answer to open it.</span></p></div>')
        return "".join(parts)


def ask(question: str, answers: list[tuple[str, bool, str]], explanation: str = "") -> Quiz:
    """A quiz from (text, right, why) triples; the notebook displays what it returns."""
    return Quiz(question, tuple(Answer(*a) for a in answers), explanation)
