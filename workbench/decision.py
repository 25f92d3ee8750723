"""The Decide step: score questionnaire answers into fine-tuning, RAG or a hybrid, with drivers and flips.

Score of an option = sum over answered questions of weight x points(answer, option). The engine is
pure data in, data out; the questions, weights and points live in configs/decision.yaml.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import Field

from .config import Strict, config_path, line_of, parse_model, read_yaml
from .errors import WorkbenchError

OPTION_IDS = ("fine_tuning", "rag", "hybrid_sequential", "hybrid_routing")

Points = Annotated[float, Field(ge=-3, le=3)]


class Option(Strict):
    id: Literal["fine_tuning", "rag", "hybrid_sequential", "hybrid_routing"]
    label: str
    description: str = ""


class Group(Strict):
    id: str
    label: str
    description: str = ""


class Factor(Strict):
    id: str
    label: str
    favours: Literal["fine_tuning", "rag", "hybrid_sequential", "hybrid_routing", "depends"]


class Answer(Strict):
    id: str
    label: str
    points: dict[str, Points] = {}


class Question(Strict):
    id: str
    group: str
    factors: list[str] = Field(min_length=1)
    text: str
    why: str
    weight: Annotated[float, Field(ge=0, le=10)] = 1.0
    answers: list[Answer] = Field(min_length=2)

    def answer(self, answer_id: str) -> Answer:
        return next(a for a in self.answers if a.id == answer_id)


class Preset(Strict):
    id: str
    label: str
    description: str = ""
    answers: dict[str, str]


class Confidence(Strict):
    clear: Annotated[float, Field(gt=0)]
    moderate: Annotated[float, Field(gt=0)]


class DecisionConfig(Strict):
    options: list[Option] = Field(min_length=2)
    confidence: Confidence
    groups: list[Group] = Field(min_length=1)
    factors: list[Factor] = Field(min_length=1)
    questions: list[Question] = Field(min_length=1)
    presets: list[Preset] = []

    @property
    def option_ids(self) -> list[str]:
        return [o.id for o in self.options]

    def question(self, question_id: str) -> Question:
        return next(q for q in self.questions if q.id == question_id)

    def option_label(self, option_id: str) -> str:
        return next(o.label for o in self.options if o.id == option_id)

    def preset(self, preset_id: str) -> Preset:
        for p in self.presets:
            if p.id == preset_id:
                return p
        raise WorkbenchError(f"unknown preset '{preset_id}'; known: {', '.join(p.id for p in self.presets)}")


def _reference_problems(cfg: DecisionConfig) -> list[tuple[tuple[Any, ...], str]]:
    """Cross-references pydantic cannot check: unique ids, and ids that must name something defined."""
    problems: list[tuple[tuple[Any, ...], str]] = []

    def unique(items: list[Any], key: str) -> None:
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                problems.append(((key, i, "id"), f"duplicate id '{item.id}'"))
            seen.add(item.id)

    unique(cfg.options, "options")
    unique(cfg.groups, "groups")
    unique(cfg.factors, "factors")
    unique(cfg.questions, "questions")
    unique(cfg.presets, "presets")
    if cfg.confidence.moderate > cfg.confidence.clear:
        problems.append((("confidence", "moderate"), "expected a value no larger than 'clear'"))
    options, groups, factors = set(cfg.option_ids), {g.id for g in cfg.groups}, {f.id for f in cfg.factors}
    for qi, q in enumerate(cfg.questions):
        if q.group not in groups:
            problems.append((("questions", qi, "group"), f"unknown group '{q.group}'; expected one of: {', '.join(sorted(groups))}"))
        for fi, f in enumerate(q.factors):
            if f not in factors:
                problems.append((("questions", qi, "factors", fi), f"unknown factor '{f}'"))
        unique(q.answers, f"questions.{qi}.answers")
        for ai, a in enumerate(q.answers):
            for opt in a.points:
                if opt not in options:
                    problems.append((("questions", qi, "answers", ai, "points", opt),
                                     f"unknown option '{opt}'; expected one of: {', '.join(cfg.option_ids)}"))
    covered = {f for q in cfg.questions for f in q.factors}
    for fi, f in enumerate(cfg.factors):
        if f.id not in covered:
            problems.append((("factors", fi, "id"), f"factor '{f.id}' is not asked by any question"))
    questions = {q.id: q for q in cfg.questions}
    for pi, p in enumerate(cfg.presets):
        for qid, aid in p.answers.items():
            if qid not in questions:
                problems.append((("presets", pi, "answers", qid), f"unknown question '{qid}'"))
            elif aid not in {a.id for a in questions[qid].answers}:
                problems.append((("presets", pi, "answers", qid), f"unknown answer '{aid}' for question '{qid}'"))
    return problems


def load_decision_config(path: Path | str | None = None) -> DecisionConfig:
    """Load and validate the decision framework (configs/decision.yaml unless a path is given)."""
    path = Path(path) if path else config_path("decision.yaml")
    data, node = read_yaml(path)
    cfg = parse_model(DecisionConfig, data, path, node)
    problems = _reference_problems(cfg)
    if problems:
        loc, message = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise WorkbenchError(message + more, file=str(path), line=line_of(node, loc),
                             field=".".join(str(p) for p in loc))
    return cfg


# --- answers ---------------------------------------------------------------------------------------

def check_answers(cfg: DecisionConfig, answers: Mapping[str, Any], source: str | None = None) -> dict[str, str]:
    """Validate a mapping question id -> answer id (None means unanswered); unknown ids are errors naming them."""
    if not isinstance(answers, Mapping):
        raise WorkbenchError("expected a mapping from question id to answer id", file=source)
    known = {q.id: q for q in cfg.questions}
    unknown_q = [str(k) for k in answers if k not in known]
    if unknown_q:
        raise WorkbenchError(f"unknown question id(s): {', '.join(unknown_q)}; "
                             f"see `workbench decide --list-questions`", file=source)
    clean: dict[str, str] = {}
    for qid, aid in answers.items():
        if aid is None or aid == "":
            continue
        ids = [a.id for a in known[qid].answers]
        if str(aid) not in ids:
            raise WorkbenchError(f"unknown answer id '{aid}'; expected one of: {', '.join(ids)}",
                                 file=source, field=qid)
        clean[qid] = str(aid)
    return clean


def load_answers(cfg: DecisionConfig, path: Path | str) -> dict[str, str]:
    """Read an answers YAML file (question id -> answer id)."""
    data, _ = read_yaml(path)
    return check_answers(cfg, data or {}, source=str(path))


def answers_yaml(answers: Mapping[str, str]) -> str:
    """Answers as YAML text, for download and the CLI."""
    import yaml
    return yaml.safe_dump(dict(answers), sort_keys=False)


# --- the engine ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Driver:
    """One answer's push toward the recommendation, relative to the runner-up."""

    question: str
    answer: str
    contribution: float
    group: str
    question_text: str
    answer_label: str


@dataclass(frozen=True)
class Change:
    question: str
    from_answer: str | None
    to_answer: str


@dataclass(frozen=True)
class Flip:
    """A smallest set of answer changes that makes another option win."""

    changes: list[Change]
    recommendation: str
    margin: float


@dataclass
class Recommendation:
    recommendation: str
    label: str
    scores: dict[str, float]
    margin: float
    runner_up: str
    confidence: Literal["clear", "moderate", "narrow", "tie"]
    drivers: list[Driver]
    flips: list[Flip]
    unanswered: list[str]
    group_scores: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _points(q: Question, answer_id: str | None, option: str) -> float:
    if answer_id is None:
        return 0.0
    return q.weight * q.answer(answer_id).points.get(option, 0.0)


def score(cfg: DecisionConfig, answers: Mapping[str, str]) -> dict[str, float]:
    """Score of each option: sum of weight x points over answered questions."""
    return {o: round(sum(_points(q, answers.get(q.id), o) for q in cfg.questions), 6) for o in cfg.option_ids}


def _rank(cfg: DecisionConfig, scores: Mapping[str, float]) -> list[str]:
    # Ties keep the config order of options, so results are deterministic.
    order = {o: i for i, o in enumerate(cfg.option_ids)}
    return sorted(scores, key=lambda o: (-scores[o], order[o]))


def _flips(cfg: DecisionConfig, answers: Mapping[str, str], scores: Mapping[str, float],
           winner: str, limit: int) -> list[Flip]:
    """Fewest answer changes (up to three) that change the winner; closest answers first."""
    moves = []  # (question, from, to, distance, score deltas)
    for q in cfg.questions:
        current = answers.get(q.id)
        ids = [a.id for a in q.answers]
        for a in q.answers:
            if a.id == current:
                continue
            distance = abs(ids.index(a.id) - ids.index(current)) if current else 1
            delta = {o: _points(q, a.id, o) - _points(q, current, o) for o in cfg.option_ids}
            moves.append((q.id, current, a.id, distance, delta))

    def outcome(combo: tuple[Any, ...]) -> tuple[str, float] | None:
        new = {o: scores[o] + sum(m[4][o] for m in combo) for o in cfg.option_ids}
        ranked = _rank(cfg, new)
        if ranked[0] == winner or new[ranked[0]] == new[ranked[1]]:
            return None
        return ranked[0], round(new[ranked[0]] - new[ranked[1]], 6)

    for size in (1, 2, 3):
        found = []
        for combo in itertools.combinations(moves, size):
            if len({m[0] for m in combo}) < size:
                continue
            result = outcome(combo)
            if result:
                found.append((sum(m[3] for m in combo), -result[1], combo, result))
        if found:
            found.sort(key=lambda f: (f[0], f[1]))
            flips, seen = [], set()
            for _, _, combo, (rec, margin) in found:
                key = frozenset(m[0] for m in combo)
                if key in seen:  # keep the closest change per question (set)
                    continue
                seen.add(key)
                flips.append(Flip([Change(m[0], m[1], m[2]) for m in combo], rec, margin))
                if len(flips) == limit:
                    break
            return flips
    return []


def recommend(cfg: DecisionConfig, answers: Mapping[str, Any], flip_limit: int = 5) -> Recommendation:
    """Score answers and explain the result: drivers ranked by contribution, and what would flip it."""
    answers = check_answers(cfg, answers)
    scores = score(cfg, answers)
    ranked = _rank(cfg, scores)
    winner, runner_up = ranked[0], ranked[1]
    margin = round(scores[winner] - scores[runner_up], 6)
    if margin == 0:
        confidence = "tie"
    elif margin >= cfg.confidence.clear:
        confidence = "clear"
    elif margin >= cfg.confidence.moderate:
        confidence = "moderate"
    else:
        confidence = "narrow"
    drivers = []
    for q in cfg.questions:
        aid = answers.get(q.id)
        if aid is None:
            continue
        contribution = round(_points(q, aid, winner) - _points(q, aid, runner_up), 6)
        drivers.append(Driver(q.id, aid, contribution, q.group, q.text, q.answer(aid).label))
    drivers.sort(key=lambda d: -d.contribution)
    group_scores = {
        g.id: {o: round(sum(_points(q, answers.get(q.id), o) for q in cfg.questions if q.group == g.id), 6)
               for o in cfg.option_ids}
        for g in cfg.groups
    }
    return Recommendation(
        recommendation=winner,
        label=cfg.option_label(winner),
        scores=scores,
        margin=margin,
        runner_up=runner_up,
        confidence=confidence,
        drivers=drivers,
        flips=_flips(cfg, answers, scores, winner, flip_limit),
        unanswered=[q.id for q in cfg.questions if q.id not in answers],
        group_scores=group_scores,
    )


_ASIDE = re.compile(r"\s*\([^()]*\)")


def flip_sentence(cfg: DecisionConfig, flip: Flip) -> str:
    """A flip as one short sentence in answer labels, with its margin said in words.

    Questions are named without their asides in parentheses, to keep the sentence short. Plain text: the
    page escapes it for Markdown, the memo for its table cells.
    """
    parts = []
    for c in flip.changes:
        q = cfg.question(c.question)
        now = f"now “{q.answer(c.from_answer).label}”" if c.from_answer else "now unanswered"
        parts.append(f"“{q.answer(c.to_answer).label}” to “{_ASIDE.sub('', q.text)}” ({now})")
    changes = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    points = f"{flip.margin:g} point{'' if flip.margin == 1 else 's'}"
    return (f"Answering {changes} would make {cfg.option_label(flip.recommendation)} the recommendation, "
            f"{points} ahead of the next option.")


def questions_table(cfg: DecisionConfig) -> list[dict[str, Any]]:
    """One row per question and answer id, for listings and the CLI's --list-questions."""
    return [
        {"question": q.id, "group": q.group, "weight": q.weight, "text": q.text,
         "answers": [{"id": a.id, "label": a.label} for a in q.answers]}
        for q in cfg.questions
    ]


# --- persistence in a workspace --------------------------------------------------------------------

DECIDE_KEY = "decide"


def save_decision(ws: Any, answers: Mapping[str, str], result: Recommendation) -> None:
    """Store the answers and the recommendation they gave in the workspace."""
    ws.set_state(DECIDE_KEY, {"answers": dict(answers), "result": result.to_dict()})


def saved_answers(ws: Any) -> dict[str, str]:
    """The answers last saved in the workspace (empty if none)."""
    return dict((ws.get_state(DECIDE_KEY) or {}).get("answers", {}))


def saved_result(ws: Any) -> dict[str, Any] | None:
    """The recommendation last saved in the workspace, as a plain dict, or None."""
    return (ws.get_state(DECIDE_KEY) or {}).get("result")
