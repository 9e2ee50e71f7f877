"""The pure analysers: exact figures on hand-built transcripts, and labelled sentences they must get right."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sophia_mcp.analysis.churn import reason
from sophia_mcp.analysis.competitors import find_competitor_mentions, find_in_text
from sophia_mcp.analysis.conversation import talk_stats
from sophia_mcp.analysis.health import call_components, client_health
from sophia_mcp.analysis.insights import build_analysis, local_insights
from sophia_mcp.analysis.risk import risk_kinds
from sophia_mcp.analysis.sentiment import business_sentiment, label, sentence_sentiment, summarize_sentiment
from sophia_mcp.domain.calls import Call, Monologue, Party, Sentence, Transcript
from sophia_mcp.domain.plural import plural
from sophia_mcp.domain.results import CallAnalysis
from sophia_mcp.domain.weights import DEFAULT_COMPETITORS, HealthWeights

REP = Party(id="p1", name="Dana", affiliation="Internal", speaker_id="rep")
CLIENT = Party(id="p2", name="Sam", affiliation="External", speaker_id="client")
PARTIES = [REP, CLIENT]
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def mono(speaker: str, *spans: tuple[int, int, str]) -> Monologue:
    return Monologue(speaker_id=speaker, sentences=[Sentence(start_ms=a, end_ms=b, text=t) for a, b, t in spans])


def transcript(*monologues: Monologue) -> Transcript:
    return Transcript(call_id="1", monologues=list(monologues))


def call(started: datetime = NOW) -> Call:
    return Call(id="1", title="t", started=started, duration_s=60, client_id="c1", client_name="Acme", parties=PARTIES)


# -- talk figures ---------------------------------------------------------------------------------------


def test_talk_ratio_and_monologue_are_exact() -> None:
    stats = talk_stats(
        transcript(
            mono("rep", (0, 3000, "Hello there."), (3500, 5000, "How are things?")),
            mono("client", (6000, 16000, "Good."), (16000, 20000, "Really good.")),
            mono("rep", (21000, 22000, "Great?")),
        ),
        PARTIES,
    )
    assert (stats.internal_ms, stats.external_ms, stats.unknown_ms) == (5500, 14000, 0)
    assert stats.internal_ratio == pytest.approx(5500 / 19500)
    assert (stats.longest_monologue_ms, stats.longest_monologue_speaker_id) == (14000, "client")
    assert (stats.questions_internal, stats.questions_external) == (2, 0)


def test_consecutive_monologues_of_one_speaker_are_one_stretch() -> None:
    stats = talk_stats(
        transcript(
            mono("rep", (0, 2000, "One.")),
            mono("rep", (2500, 9000, "Two, still me.")),
            mono("client", (9500, 14000, "Me now?")),
        ),
        PARTIES,
    )
    assert (stats.longest_monologue_ms, stats.longest_monologue_speaker_id) == (9000, "rep")
    assert stats.questions_external == 1


def test_speaker_without_party_counts_as_unknown() -> None:
    stats = talk_stats(
        transcript(mono("ghost", (0, 7000, "Joining from the dial-in?")), mono("client", (7000, 8000, "Hi."))),
        PARTIES,
    )
    assert (stats.internal_ms, stats.external_ms, stats.unknown_ms) == (0, 1000, 7000)
    assert stats.internal_ratio == 0.0
    assert (stats.questions_internal, stats.questions_external) == (0, 0)
    assert stats.longest_monologue_speaker_id == "ghost"


def test_empty_transcript() -> None:
    stats = talk_stats(transcript(), PARTIES)
    assert stats.internal_ratio is None and stats.longest_monologue_ms == 0
    summary = summarize_sentiment(transcript(), PARTIES)
    assert (summary.overall, summary.external, summary.label, summary.speakers) == (0.0, None, "neutral", [])


# -- sentiment --------------------------------------------------------------------------------------------

SENTIMENT = [
    ("The team loves how much faster owner statements are now.", "positive"),
    ("Support has been excellent, tickets get answered within the hour.", "positive"),
    ("Residents are happy with the portal and collections are up.", "positive"),
    ("The rollout went smoothly and the training was helpful.", "positive"),
    ("Reconciliation is seamless now, our accountants are thrilled.", "positive"),
    ("Thank you, this has been a great partnership.", "positive"),
    ("The new maintenance app is intuitive and reliable.", "positive"),
    ("We're excited to expand to our other properties.", "positive"),
    ("Your team did an amazing job during month end.", "positive"),
    ("Honestly it's been a rough quarter with the platform.", "negative"),
    ("The team is frustrated, we spend hours on workarounds every week.", "negative"),
    ("We've had two outages during rent week, which is unacceptable.", "negative"),
    ("The accounting integration is broken again.", "negative"),
    ("We are disappointed, this is not what we were promised.", "negative"),
    ("The portal is slow and buggy.", "negative"),
    ("We're seriously considering cancelling at renewal.", "negative"),
    ("It's too expensive and the price increase is hard to justify.", "negative"),
    ("Residents keep complaining about failed payments.", "negative"),
    ("My team is unhappy with it right now.", "negative"),
    ("We have three more properties to move over.", "neutral"),
    ("The owner statements go out on the fifth of the month.", "neutral"),
    ("Let's meet again in two weeks.", "neutral"),
    ("We manage about four thousand units in Denver.", "neutral"),
    ("Can you send the invoice to our controller?", "neutral"),
    ("The renewal is in March.", "neutral"),
    ("There will be a price increase in January.", "neutral"),
]


@pytest.mark.parametrize(("sentence", "expected"), SENTIMENT)
def test_sentiment_labels(sentence: str, expected: str) -> None:
    assert label(sentence_sentiment(sentence)) == expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [("Thanks, that is all.", "neutral"), ("Happy to help with that.", "neutral"),
     ("Then I am happy to sign.", "positive"), ("We are happy to renew for two years.", "positive"),
     ("Happy to.", "neutral"), ("I am sorry.", "neutral"),
     ("If you could prepare them, that would be easier.", "neutral")],
)  # fmt: skip
def test_courtesy_is_manners_but_a_client_happy_to_sign_is_not(sentence: str, expected: str) -> None:
    assert label(business_sentiment(sentence)) == expected


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [("The owners got their statements and nobody complained.", "neutral"),
     ("It does not mean anyone is unhappy.", "neutral"),
     ("The team would have been upset if we had to change systems.", "neutral"),
     ("What worries me is that nobody noticed.", "negative"), ("I am not happy with it.", "negative"),
     ("We have no complaints, but the outage hurt.", "negative")],
)  # fmt: skip
def test_bad_news_denied_is_not_bad_news(sentence: str, expected: str) -> None:
    assert label(business_sentiment(sentence)) == expected


def test_a_client_leaving_politely_reads_negative() -> None:
    polite_goodbye = transcript(
        mono("rep", (0, 900, "Did the parent company look at the proposal?")),
        mono("client", (1000, 1900, "They appreciated the effort, but the decision stands."),
             (2000, 2900, "We will be moving to RealPage in March."), (3000, 3900, "Personally I would have stayed."),
             (4000, 4900, "Your team has been good to us.")),
    )  # fmt: skip
    insights = local_insights(call(), polite_goodbye, DEFAULT_COMPETITORS)
    assert [r.kind for r in insights.risk_factors] == ["churn_intent"]
    assert insights.sentiment.label == "negative"


def test_sentiment_rolls_up_per_speaker_and_for_the_client() -> None:
    summary = summarize_sentiment(
        transcript(
            mono("rep", (0, 1, "This is great news, thank you!")),
            mono("client", (1, 2, "The integration is broken and we are frustrated.")),
        ),
        PARTIES,
    )
    speakers = {s.speaker_id: s for s in summary.speakers}
    assert speakers["rep"].compound > 0.5 and speakers["rep"].affiliation == "Internal"
    assert speakers["client"].compound < -0.5 and speakers["client"].name == "Sam"
    assert summary.external == speakers["client"].compound
    assert summary.label == "negative"  # the client's side decides, not the rep's enthusiasm


# -- competitors ------------------------------------------------------------------------------------------

COMPETITOR_SENTENCES = [
    ("We had a demo with AppFolio last week.", ["AppFolio"]),
    ("appfolio's pricing looked lower.", ["AppFolio"]),
    ("APPFOLIO called us again.", ["AppFolio"]),
    ("They pitched App Folio as the easy option.", ["AppFolio"]),
    ("We use Yardi for the commercial buildings.", ["Yardi"]),
    ("Yardi Breeze is what our sister company runs.", ["Yardi"]),
    ("Yardi Voyager felt heavy.", ["Yardi"]),
    ("Breeze quoted us a lower price.", ["Yardi"]),
    ("It was a breeze to set up.", []),
    ("RealPage reached out to our VP.", ["RealPage"]),
    ("Real Page is in the RFP.", ["RealPage"]),
    ("The real page count of the report is twelve.", []),
    ("Their OneSite product came up.", ["RealPage"]),
    ("We moved off Buildium two years ago.", ["Buildium"]),
    ("Buildium's support was slow.", ["Buildium"]),
    ("Entrata quoted us twenty percent less.", ["Entrata"]),
    ("entrata and Yardi both sent proposals.", ["Entrata", "Yardi"]),
    ("We compared AppFolio, Buildium and Entrata.", ["AppFolio", "Buildium", "Entrata"]),
    ("The Yardi-like workflow is confusing.", []),
    ("We are happy with Pay Ready.", []),
    ("Our entrance gate is broken.", []),
    ("The building is by the appfolio-style layout.", []),
    ("Yardis are everywhere in this market.", []),
    ("We saw RealPage and then RealPage again.", ["RealPage"]),
    ("Nothing to report on competitors.", []),
]


@pytest.mark.parametrize(("sentence", "expected"), COMPETITOR_SENTENCES)
def test_competitor_detection(sentence: str, expected: list[str]) -> None:
    assert [name for name, _ in find_in_text(sentence, DEFAULT_COMPETITORS)] == expected


def test_overlapping_aliases_match_once_with_the_longest() -> None:
    assert find_in_text("We run Yardi Breeze today.", DEFAULT_COMPETITORS) == [("Yardi", "Yardi Breeze")]


def test_mentions_carry_quote_speaker_and_time() -> None:
    mentions = find_competitor_mentions(
        transcript(mono("client", (1200, 4000, "Entrata quoted us less.")), mono("ghost", (5000, 6000, "AppFolio?"))),
        PARTIES,
        DEFAULT_COMPETITORS,
    )
    assert [(m.competitor, m.speaker_name, m.affiliation, m.at_ms, m.text) for m in mentions] == [
        ("Entrata", "Sam", "External", 1200, "Entrata quoted us less."),
        ("AppFolio", None, "Unknown", 5000, "AppFolio?"),
    ]


# -- risk ---------------------------------------------------------------------------------------------------

RISK_SENTENCES = [
    ("The price increase on the renewal quote is hard to justify.", ["pricing"]),
    ("It's getting too expensive for a portfolio our size.", ["pricing"]),
    ("We need a better rate if we're going to expand.", ["pricing"]),
    ("We're seriously considering cancelling at renewal.", ["churn_intent"]),
    ("We will not be renewing in March.", ["churn_intent"]),
    ("Leadership wants to end our contract early.", ["churn_intent"]),
    ("We're thinking about switching to a different platform.", ["churn_intent"]),
    ("We are not planning to cancel.", []),
    ("No plans to switch providers this year.", []),
    ("Our budget was cut for next year.", ["budget"]),
    ("There's a spending freeze until the refinancing closes.", ["budget"]),
    ("The migration has been painful and we still have data import errors.", ["implementation"]),
    ("Online payments failed twice last week.", ["implementation"]),
    ("Owner statements are still not working.", ["implementation"]),
    ("We haven't had any outages this quarter.", []),
    ("The rollout has been smooth, no errors at all.", []),
    ("We had a demo with AppFolio last week.", ["competitor_evaluation"]),
    ("Entrata quoted us about twenty percent less.", ["competitor_evaluation"]),
    ("We've started an RFP.", ["competitor_evaluation"]),
    ("We are looking at other vendors.", ["competitor_evaluation"]),
    ("We moved off Buildium two years ago and don't miss it.", []),
    ("We are not looking at alternatives.", []),
    ("Everything is working great.", []),
    ("We had a demo with AppFolio and are considering cancelling.", ["churn_intent", "competitor_evaluation"]),
    ("The board voted to review all vendors before renewing anything.", ["churn_intent"]),
    ("He wants to move two properties to Entrata as a trial.", ["churn_intent"]),
]


@pytest.mark.parametrize(("sentence", "expected"), RISK_SENTENCES)
def test_risk_detection(sentence: str, expected: list[str]) -> None:
    assert risk_kinds(sentence, DEFAULT_COMPETITORS) == expected


def test_only_the_client_side_raises_risks() -> None:
    insights = local_insights(
        call(),
        transcript(
            mono("rep", (0, 1, "Is the price increase a problem for you, or are you considering cancelling?")),
            mono("client", (1, 2, "Our budget was cut.")),
        ),
        DEFAULT_COMPETITORS,
    )
    assert [(r.kind, r.speaker_id) for r in insights.risk_factors] == [("budget", "client")]


# -- health -------------------------------------------------------------------------------------------------


def analysis_of(*sentences: tuple[str, str], started: datetime = NOW) -> CallAnalysis:
    """A call where speakers say the given sentences, one second each."""
    monologues = [mono(who, (i * 1000, (i + 1) * 1000, text)) for i, (who, text) in enumerate(sentences)]
    t = transcript(*monologues)
    c = call(started)
    return build_analysis(c, t, local_insights(c, t, DEFAULT_COMPETITORS), "local")


def test_component_formulas() -> None:
    calm = analysis_of(("rep", "How is it going?"), ("client", "Fine."))
    parts = call_components(calm)
    assert parts["risk"][0] == 100 and parts["competition"][0] == 100
    assert parts["sentiment"][0] == pytest.approx(50 + 50 * calm.sentiment.external)  # type: ignore[operator]
    assert parts["engagement"][0] == 100  # the client spoke half the time

    rough = analysis_of(
        ("client", "We had a demo with AppFolio and are considering cancelling."),
        ("client", "Our budget was cut."),
        ("client", "The integration is broken."),
    )
    parts = call_components(rough)
    assert parts["risk"][0] == 0  # 100 - 45 - 30 - 25 - 25, floored
    assert parts["competition"][0] == 65  # one competitor named by the client
    assert parts["engagement"][0] == 60  # the client did all the talking


def test_engagement_below_the_balanced_band() -> None:
    rep_heavy = analysis_of(*[("rep", "Here is our update.")] * 9, ("client", "Okay."))
    assert call_components(rep_heavy)["engagement"][0] == pytest.approx(100 * 0.1 / 0.35)


def test_client_health_weights_components_and_recency() -> None:
    good = analysis_of(("rep", "How are things?"), ("client", "Great, the team loves it."), started=NOW)
    bad = analysis_of(
        ("rep", "How are things?"),
        ("client", "We're considering cancelling, the integration is broken."),
        started=NOW - timedelta(days=30),
    )
    health = client_health([good, bad], HealthWeights(), as_of=NOW, half_life_days=30, window_days=90)
    assert health is not None
    weights = {c.name: c.weight for c in health.components}
    assert weights == {"sentiment": 0.35, "risk": 0.3, "engagement": 0.2, "competition": 0.15}
    risk = next(c for c in health.components if c.name == "risk")
    # The good call weighs 1, the 30-day-old one 0.5: risk = (100 * 1 + 30 * 0.5) / 1.5.
    assert risk.score == pytest.approx((100 + 30 * 0.5) / 1.5, abs=0.05)
    expected = sum(c.weight * c.score for c in health.components)
    assert health.score == pytest.approx(expected, abs=0.1)
    assert 0 <= health.score <= 100
    assert "2 calls in the last 90 days" in health.explanation
    assert "churn intent (1 call)" in health.explanation


def test_client_health_window() -> None:
    old = analysis_of(("client", "We will cancel."), started=NOW - timedelta(days=91))
    assert client_health([old], HealthWeights(), as_of=NOW, half_life_days=30, window_days=90) is None
    future = analysis_of(("client", "Fine."), started=NOW + timedelta(days=1))
    assert client_health([future], HealthWeights(), as_of=NOW, half_life_days=30, window_days=90) is None


def test_weights_must_not_all_be_zero() -> None:
    a = analysis_of(("client", "Fine."))
    zero = HealthWeights(sentiment=0, risk=0, engagement=0, competition=0)
    with pytest.raises(ValueError, match="at least one health weight"):
        client_health([a], zero, as_of=NOW, half_life_days=30, window_days=90)


def test_worst_and_best_calls_stay_within_bounds() -> None:
    worst = analysis_of(
        *[("client", "We are furious, the terrible outages are unacceptable and we will cancel.")] * 3,
        ("client", "Entrata and AppFolio and Buildium quoted us less, our budget was cut, it's too expensive."),
    )
    best = analysis_of(("rep", "How is it going?"), ("client", "Wonderful, we love it, thank you so much!"))
    low = client_health([worst], HealthWeights(), as_of=NOW, half_life_days=30, window_days=90)
    high = client_health([best], HealthWeights(), as_of=NOW, half_life_days=30, window_days=90)
    assert low is not None and high is not None
    assert 0 <= low.score < 30 < 85 < high.score <= 100


@pytest.mark.parametrize(
    ("feature", "value", "said"),
    [("calls_90d", 1.0, "only 1 call in 90 days"), ("calls_90d", 12.0, "12 calls in 90 days"),
     ("competitor_mentions", 1.0, "1 competitor mention on calls in 90 days"),
     ("days_since_call", 1.0, "no call for 1 day")],
)  # fmt: skip
def test_a_count_of_one_reads_in_the_singular(feature: str, value: float, said: str) -> None:
    assert reason(feature, value) == said
    assert (plural(1, "contact"), plural(0, "contact"), plural(1204, "analysis", "analyses")) == (
        "1 contact", "0 contacts", "1,204 analyses"
    )  # fmt: skip
