"""The decision engine against scores worked by hand."""
import textwrap

import pytest

from workbench import decision
from workbench.errors import WorkbenchError

TINY = textwrap.dedent("""
    options:
      - {id: fine_tuning, label: FT}
      - {id: rag, label: RAG}
      - {id: hybrid_sequential, label: SEQ}
      - {id: hybrid_routing, label: ROUTE}
    confidence: {clear: 5, moderate: 2}
    groups:
      - {id: g1, label: Group one}
      - {id: g2, label: Group two}
    factors:
      - {id: f1, label: F1, favours: fine_tuning}
      - {id: f2, label: F2, favours: rag}
    questions:
      - id: q1
        group: g1
        factors: [f1]
        weight: 2
        text: Q1?
        why: because
        answers:
          - {id: a, label: A, points: {fine_tuning: 2, rag: -1}}
          - {id: b, label: B, points: {rag: 1}}
          - {id: c, label: C, points: {fine_tuning: -2, rag: 2, hybrid_sequential: 1}}
      - id: q2
        group: g2
        factors: [f2]
        text: Q2?
        why: because
        answers:
          - {id: x, label: X, points: {fine_tuning: 1}}
          - {id: y, label: Y, points: {rag: 1, hybrid_routing: 1}}
      - id: q3
        group: g2
        factors: [f1, f2]
        text: Q3?
        why: because
        answers:
          - {id: m, label: M, points: {hybrid_sequential: 2}}
          - {id: n, label: N, points: {}}
""")


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "decision.yaml"
    path.write_text(TINY)
    return decision.load_decision_config(path)


@pytest.fixture(scope="module")
def shipped():
    return decision.load_decision_config()


def test_scores_drivers_and_flips_worked_by_hand(tiny):
    r = decision.recommend(tiny, {"q1": "a", "q2": "y"})
    # FT = 2*2 + 0 = 4; RAG = 2*(-1) + 1 = -1; SEQ = 0; ROUTE = 0 + 1 = 1
    assert r.scores == {"fine_tuning": 4, "rag": -1, "hybrid_sequential": 0, "hybrid_routing": 1}
    assert (r.recommendation, r.runner_up, r.margin) == ("fine_tuning", "hybrid_routing", 3)
    assert r.confidence == "moderate"  # 2 <= 3 < 5
    # Contribution = weight * (points for FT - points for ROUTE): q1 2*(2-0) = 4, q2 1*(0-1) = -1.
    assert [(d.question, d.contribution) for d in r.drivers] == [("q1", 4), ("q2", -1)]
    assert sum(d.contribution for d in r.drivers) == r.margin
    assert r.unanswered == ["q3"]
    # q1 a->b: FT 0, RAG 2+1 = 3, ROUTE 1 -> RAG by 2. q1 a->c would flip too but is further away.
    # q2 y->x makes FT stronger; q3 m gives SEQ 2 < 4: neither flips.
    assert len(r.flips) == 1
    flip = r.flips[0]
    assert [(c.question, c.from_answer, c.to_answer) for c in flip.changes] == [("q1", "a", "b")]
    assert (flip.recommendation, flip.margin) == ("rag", 2)
    # Group g1 holds q1 only: FT 4, RAG -2.
    assert r.group_scores["g1"] == {"fine_tuning": 4, "rag": -2, "hybrid_sequential": 0, "hybrid_routing": 0}


def test_only_the_closest_flipping_answer_per_question_is_listed(tiny):
    # q1=a, q2=x: FT 5, RAG -2, SEQ 0, ROUTE 0. One change: q1->c gives FT -4+1=-3, RAG 4, SEQ 2 -> RAG wins.
    r = decision.recommend(tiny, {"q1": "a", "q2": "x", "q3": "n"})
    assert r.scores["fine_tuning"] == 5 and r.confidence == "clear"
    assert all(len(f.changes) == 1 for f in r.flips)
    assert {f.changes[0].to_answer for f in r.flips} == {"b"}  # closest flipping answer of q1


def test_a_flip_reads_as_one_sentence_in_answer_labels(tiny, shipped):
    r = decision.recommend(tiny, {"q1": "a", "q2": "y"})   # q1 a->b makes RAG win by 2 (worked above)
    assert decision.flip_sentence(tiny, r.flips[0]) == (
        "Answering “B” to “Q1?” (now “A”) would make RAG the recommendation, 2 points ahead of the next option.")
    two = decision.Flip([decision.Change("q3", None, "m"), decision.Change("q2", "x", "y")], "hybrid_routing", 1)
    assert decision.flip_sentence(tiny, two) == (
        "Answering “M” to “Q3?” (now unanswered) and “Y” to “Q2?” (now “X”) would make ROUTE the recommendation, "
        "1 point ahead of the next option.")
    # Nothing answered: "Yes, clearly" to the stable-core question gives the sequential hybrid 1.5 x 3 = 4.5 points
    # and every other option 0. The question is named without its asides in parentheses.
    first = decision.recommend(shipped, {}).flips[0]
    assert decision.flip_sentence(shipped, first) == (
        "Answering “Yes, clearly” to “Is there a stable core plus peripheral facts that change fast?” (now "
        "unanswered) would make Hybrid (fine-tune, then RAG) the recommendation, 4.5 points ahead of the next option.")


def test_unanswered_is_neutral_and_no_answers_is_a_tie(tiny):
    r = decision.recommend(tiny, {})
    assert set(r.scores.values()) == {0}
    assert r.confidence == "tie" and r.margin == 0
    assert r.unanswered == ["q1", "q2", "q3"]
    assert decision.recommend(tiny, {"q1": None, "q2": "y"}).unanswered == ["q1", "q3"]


def test_unknown_ids_are_errors_that_name_them(tiny):
    with pytest.raises(WorkbenchError, match="unknown question id\\(s\\): q9, zz"):
        decision.recommend(tiny, {"q9": "a", "zz": "b", "q1": "a"})
    with pytest.raises(WorkbenchError) as err:
        decision.recommend(tiny, {"q1": "d"})
    assert err.value.field == "q1" and "expected one of: a, b, c" in str(err.value)


def test_answers_file_round_trip(tiny, tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text(decision.answers_yaml({"q1": "c", "q2": "y"}))
    assert decision.load_answers(tiny, path) == {"q1": "c", "q2": "y"}
    path.write_text("- q1\n- q2\n")
    with pytest.raises(WorkbenchError, match="expected a mapping"):
        decision.load_answers(tiny, path)


def test_shipped_framework_covers_the_twelve_classic_factors(shipped):
    classic = {"task_specialization", "style_consistency", "efficiency", "stable_domain", "many_examples",
               "repeated_patterns", "knowledge_freshness", "factual_accuracy", "transparent_sourcing",
               "diverse_queries", "few_examples", "growing_knowledge_base"}
    extra = {"multilingual", "sensitive_data", "latency_budget", "query_volume", "budget_profile",
             "team_skills", "stable_core_changing_periphery", "routable_query_types"}
    asked = {f for q in shipped.questions for f in q.factors}
    assert classic | extra <= asked
    assert all(q.why for q in shipped.questions)


def test_shipped_weights_worked_by_hand(shipped):
    # knowledge_freshness=daily (w 1.5), citations=required (w 1), training_examples=none (w 1.5):
    #   FT    1.5*-2 + -2 + 1.5*-3 = -9.5     RAG   1.5*2 + 2 + 1.5*1 = 6.5
    #   SEQ   1.5*1  +  2 + 1.5*-3 = -1       ROUTE 1.5*1 + -1 + 1.5*-2 = -2.5
    r = decision.recommend(shipped, {"knowledge_freshness": "daily", "citations": "required",
                                     "training_examples": "none"})
    assert r.scores == {"fine_tuning": -9.5, "rag": 6.5, "hybrid_sequential": -1, "hybrid_routing": -2.5}
    assert (r.recommendation, r.runner_up, r.margin, r.confidence) == ("rag", "hybrid_sequential", 7.5, "clear")
    # RAG over SEQ: examples 1.5*(1-(-3)) = 6, freshness 1.5*(2-1) = 1.5, citations 2-2 = 0.
    assert [(d.question, d.contribution) for d in r.drivers] == [
        ("training_examples", 6), ("knowledge_freshness", 1.5), ("citations", 0)]
    assert len(r.unanswered) == len(shipped.questions) - 3


@pytest.mark.parametrize("preset, expected", [
    ("support_bot", "rag"),
    ("brand_voice", "fine_tuning"),
    ("policy_qa", "rag"),
    ("sales_assistant", "hybrid_sequential"),
    ("helpdesk_router", "hybrid_routing"),
])
def test_presets_give_the_expected_recommendation(shipped, preset, expected):
    answers = shipped.preset(preset).answers
    assert set(answers) == {q.id for q in shipped.questions}  # presets answer everything
    r = decision.recommend(shipped, answers)
    assert r.recommendation == expected
    assert r.margin > 0
    for flip in r.flips:  # every flip listed really flips
        changed = dict(answers, **{c.question: c.to_answer for c in flip.changes})
        assert decision.recommend(shipped, changed).recommendation == flip.recommendation != expected


def test_result_is_json_ready(shipped):
    import json
    r = decision.recommend(shipped, shipped.preset("helpdesk_router").answers)
    data = json.loads(json.dumps(r.to_dict()))
    assert data["recommendation"] == "hybrid_routing"
    assert set(data["scores"]) == {"fine_tuning", "rag", "hybrid_sequential", "hybrid_routing"}
    assert {"question", "answer", "contribution"} <= set(data["drivers"][0])
    assert data["flips"] and data["flips"][0]["changes"]


def test_decision_saved_in_workspace(shipped):
    from workbench.workspace import open_workspace
    ws = open_workspace("w1", create=True)
    answers = {"citations": "required"}
    decision.save_decision(ws, answers, decision.recommend(shipped, answers))
    again = open_workspace("w1")
    assert decision.saved_answers(again) == answers
    assert decision.saved_result(again)["recommendation"] == "rag"
