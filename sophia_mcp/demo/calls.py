"""The demo data set: property-management clients of "Pay Ready", their contacts, and 90 days of their calls.

Calls come out exactly as Gong API v2 answers `/v2/calls/extensive` and `/v2/calls/transcript`, so the demo
loads through the same import path as a real export. Deterministic: the same `today` and seed give the same data.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sophia_mcp.domain.crm import Client, Contact
from sophia_mcp.domain.enrich import Organization

Tone = Literal["positive", "neutral", "at_risk"]

INTERNAL_DOMAIN = "payready.com"
WORKSPACE_ID = "623457276584334"

COMPANY_NAMES = [
    "Harborview Residential", "Summit Ridge Property Group", "Lakeshore Living", "Copperline Communities",
    "Bluebonnet Property Management", "Cedar & Stone Realty", "Northgate Apartments", "Magnolia Row Management",
    "Ironwood Property Partners", "Silver Creek Residential", "Pinecrest Homes", "Riverbend Property Co.",
    "Granite Peak Rentals", "Oakhaven Management", "Sunset Terrace Living", "Keystone Multifamily",
    "Willow Park Properties", "Crescent Bay Residential", "Highland Commons", "Evergreen Tenant Services",
    "Prairie Wind Property Group", "Canyon Vista Management", "Maple Leaf Residential", "Seaside Rentals Group",
    "Brookstone Property Management", "Redwood Heights Living", "Foxglove Communities", "Union Square Realty",
    "Blue Heron HOA Services", "Trailhead Student Living", "Campus Corner Housing", "Old Mill Commercial",
    "Meridian Property Partners", "Juniper Ridge Apartments", "Lighthouse Point Management", "Stonegate Residential",
    "Aspen Grove Properties", "Peachtree Property Services", "Gateway Urban Living", "Bayside Multifamily",
    "Cobblestone Management Group", "Horizon Park Residential", "Kingsbridge Properties", "Sagebrush Rentals",
    "Wildflower HOA Management", "Tidewater Property Group",
]  # fmt: skip
CITIES = [
    "Austin, TX", "Denver, CO", "Phoenix, AZ", "Atlanta, GA", "Charlotte, NC", "Nashville, TN", "Tampa, FL",
    "Columbus, OH", "Raleigh, NC", "Salt Lake City, UT", "Portland, OR", "Kansas City, MO", "San Diego, CA",
    "Minneapolis, MN", "Boise, ID", "Richmond, VA", "Dallas, TX", "Orlando, FL",
]  # fmt: skip
FIRST_NAMES = [
    "Maria", "James", "Aisha", "Daniel", "Priya", "Robert", "Elena", "Marcus", "Grace", "Tomás", "Hannah", "Kevin",
    "Olivia", "Andre", "Mei", "Lucas", "Fatima", "Ryan", "Sofia", "Derek", "Nina", "Victor", "Chloe", "Jamal",
    "Laura", "Ethan", "Rosa", "Brandon", "Yuki", "Caleb",
]  # fmt: skip
LAST_NAMES = [
    "Alvarez", "Bennett", "Chen", "Douglas", "Estrada", "Fischer", "Gupta", "Hernandez", "Ibrahim", "Jensen",
    "Kowalski", "Lopez", "Morgan", "Nguyen", "Okafor", "Patel", "Quinn", "Rivera", "Sullivan", "Thompson",
    "Underwood", "Vasquez", "Walsh", "Young", "Zimmerman",
]  # fmt: skip
CONTACT_TITLES = [
    "Property Manager", "Director of Operations", "VP Finance", "Regional Manager", "Owner", "Controller",
    "Leasing Manager", "COO", "Accounting Manager", "Maintenance Coordinator",
]  # fmt: skip
INDUSTRIES = ["Property Management"] * 5 + ["Multifamily", "HOA Management", "Student Housing", "Commercial Property"]
TEAM = [
    ("Dana Reyes", "Customer Success Manager"),
    ("Chris Whitfield", "Customer Success Manager"),
    ("Leah Brandt", "Senior Customer Success Manager"),
    ("Omar Haddad", "Customer Success Manager"),
    ("Jordan Pike", "Account Executive"),
    ("Sam Kerrigan", "Solutions Engineer"),
]
COMPETITORS = ["AppFolio", "Yardi", "Yardi Breeze", "RealPage", "Buildium", "Entrata"]
MODULES = [
    "owner statements", "maintenance requests", "online rent payments", "tenant screening", "the resident portal",
    "bank reconciliation", "late fee automation", "vendor payments", "the leasing pipeline", "work orders",
]  # fmt: skip
PURPOSES = [
    "Quarterly Business Review", "Renewal Discussion", "Onboarding Check-in", "Product Roadmap Review",
    "Support Escalation", "Monthly Sync", "Payments Rollout", "Executive Check-in",
]  # fmt: skip

OPENINGS = [
    ("Hi {contact}, thanks for making the time today.", "Of course, good to see you {rep}."),
    ("Good morning {contact}, can you hear me okay?", "Loud and clear, morning {rep}."),
    ("Hey {contact}, hope the week is treating you well.", "It's been busy but good, thanks for asking."),
    (
        "Thanks for joining, {contact}, I know it's a hectic time of the month.",
        "Rent week is always wild, but happy to be here.",
    ),
    ("Hi everyone, thanks for hopping on.", "Thanks {rep}, we've got about thirty minutes."),
]  # fmt: skip
AGENDAS = [
    "I'd like to cover how {module} is going, look at a few numbers, and talk about next quarter.",
    "The plan today is a quick usage review, then your open questions, then next steps.",
    "I want to hear how the team is finding {module} and share what's coming on the roadmap.",
    "Let's review the last month, go through the support tickets, and agree on priorities.",
]
QUESTIONS = [
    ("Product Usage", "How is the team finding {module} so far?"),
    ("Product Usage", "Are your property managers using {module} every day now?"),
    ("Payments", "How are online rent payments trending across your {units} units?"),
    ("Payments", "What share of residents are paying through the portal this month?"),
    ("Reporting", "Are the owner statements going out on time at month end?"),
    ("Reporting", "Is the reporting giving your finance team what they need?"),
    ("Maintenance", "How is the maintenance request workflow working for your techs?"),
    ("Integrations", "How is the accounting integration holding up?"),
    ("Support", "How have your recent support tickets been handled?"),
    ("Renewal", "What would you like to see from us before the renewal in {month}?"),
    ("Roadmap", "Which of the roadmap items matters most to your team?"),
    ("Onboarding", "How far along is the rollout to your other properties?"),
]  # fmt: skip
POSITIVE_ANSWERS = [
    "Honestly it's been great, the team loves how much faster {module} is.",
    "Adoption is really strong, almost everyone is using it daily now.",
    "Residents are happy with the portal and our collections are up about {pct} percent.",
    "The owner statements went out two days early last month, which never happened before.",
    "Support has been excellent, tickets get answered within the hour.",
    "Maintenance requests are so much easier to track, the techs really like the mobile app.",
    "The rollout to our other buildings went smoothly and the training was helpful.",
    "We've cut late payments noticeably since we turned on autopay reminders.",
    "Our accountants are thrilled that reconciliation takes hours instead of days.",
    "It's been a big improvement, and our regional managers are asking for more dashboards.",
    "Everything has been reliable, we haven't had any outages this quarter.",
    "We're excited about the new screening features and want to be early adopters.",
]  # fmt: skip
NEUTRAL_ANSWERS = [
    "It's fine for the most part, a few managers still prefer their spreadsheets.",
    "Usage is steady, about two thirds of the team is on it every day.",
    "Collections are roughly where they were last quarter.",
    "We're still getting used to {module}, it takes some time.",
    "It works, though we'd like better filtering on the reports.",
    "Support answers, but sometimes it takes a day or two.",
    "The rollout is on schedule, we have three more properties to move over.",
    "We haven't really explored the newer features yet.",
    "Owner statements are okay, we still adjust a few by hand.",
    "It's about what we expected when we signed.",
]  # fmt: skip
NEGATIVE_ANSWERS = [
    "Honestly it's been a rough quarter with the platform.",
    "The team is frustrated, we spend hours on workarounds every week.",
    "Support tickets sit for days, and my managers have stopped filing them.",
    "Residents keep complaining that the portal is slow and confusing.",
    "Month end was a mess again and the owners noticed.",
    "We are disappointed, this is not what we were promised during the sale.",
    "It's been a struggle, and my team is unhappy with it right now.",
]
RISKS = {
    "pricing": [
        "The price increase on the renewal quote is hard to justify to our owners.",
        "To be blunt, it's getting too expensive for a portfolio our size.",
        "Our fees went up again and the value hasn't kept pace.",
        "We need a better rate if we're going to keep expanding the contract.",
    ],
    "churn": [
        "We're seriously considering cancelling at renewal.",
        "If this doesn't improve, we will not be renewing in {month}.",
        "Leadership asked me to look at what it would take to end our contract early.",
        "Frankly, we're thinking about switching to a different platform.",
    ],
    "budget": [
        "Our budget was cut for next year and software spend is under review.",
        "There's a spending freeze until the refinancing closes.",
        "The CFO is cutting costs across every vendor this quarter.",
    ],
    "implementation": [
        "The migration has been painful and we still have data import errors.",
        "Online payments failed twice last week and residents were upset.",
        "The accounting integration is broken again and nobody has fixed it.",
        "Owner statements are still not working for our HOA properties.",
        "We keep hitting bugs in the work order screen and our techs are frustrated.",
        "We've had two outages during rent week, which is unacceptable.",
    ],
    "competitor": [
        "We had a demo with {competitor} last week and it looked impressive.",
        "{competitor} quoted us about {pct} percent less for the same units.",
        "We've started an RFP and {competitor} is one of the vendors in it.",
        "Our regional VP is pushing us to look at {competitor} instead.",
        "Honestly we're comparing you with {competitor} right now.",
    ],
}
NEUTRAL_COMPETITOR = [
    "We moved off {competitor} two years ago and don't miss it.",
    "Before you, we were on {competitor}, and the reporting here is much better.",
    "A friend at another firm uses {competitor}, but we're happy where we are.",
]
REP_REPLIES = {
    "positive": [
        "That's great to hear, thank you for sharing.",
        "Love that, I'll pass it along to the product team.",
        "Fantastic, that's exactly the outcome we hoped for.",
        "That's a great result, congratulations to your team.",
    ],
    "neutral": [
        "Understood, let's see what we can do there.",
        "Makes sense, I'll send over some tips on that.",
        "Got it, I'll note that down.",
        "Okay, that's helpful context.",
    ],
    "at_risk": [
        "I hear you, and I'm sorry it's been this frustrating.",
        "That's fair feedback, and I want to fix it quickly.",
        "Thank you for being direct with me, that helps.",
        "I understand, let me bring our support lead in on this.",
    ],
}
RISK_PROBES = [
    "What would it take to earn back your confidence?",
    "Can you tell me more about what's driving that?",
    "Who else on your side is involved in that decision?",
    "If we fixed the integration this month, would that change things?",
]
CLOSINGS = [
    ("I'll send a recap and the next steps by end of day.", "Sounds good, thanks {rep}."),
    ("Let's set up a follow-up in two weeks to check progress.", "That works for us."),
    ("I'll loop in our product manager on the reporting request.", "Great, appreciate it."),
    ("Thanks again, {contact}, talk soon.", "Thanks, bye for now."),
]
DIAL_IN = ["Sorry, I'm joining from the dial-in, go ahead.", "Apologies for being late, I was on another call."]


@dataclass(frozen=True)
class DemoData:
    clients: list[Client]
    contacts: list[Contact]
    calls_extensive: dict[str, Any]
    transcripts: dict[str, Any]
    firmographics: list[Organization]


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randrange(10 ** (n - 1), 10**n))


def _domain(name: str) -> str:
    words = [w for w in name.lower().replace("&", "and").replace(".", "").split() if w not in {"co", "and"}]
    return "".join(words[:3]) + ".com"


def _segment(rng: random.Random) -> tuple[str, int, float]:
    segment = rng.choices(["SMB", "Mid-Market", "Enterprise"], weights=[5, 4, 2])[0]
    units = {"SMB": (200, 2500), "Mid-Market": (2500, 15000), "Enterprise": (15000, 60000)}[segment]
    count = rng.randrange(*units)
    return segment, count, round(count * rng.uniform(14, 22), -2)


class _Transcript:
    """Builds monologues with realistic timings (about 330-450 ms per word, pauses between speakers)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.clock = rng.randrange(1500, 6000)
        self.monologues: list[dict[str, Any]] = []
        self.talk: dict[str, int] = {}

    def say(self, speaker: str, sentences: list[str], topic: str | None = None) -> None:
        rng = self.rng
        if self.monologues:
            self.clock += rng.randrange(350, 1300)
        out = []
        for i, text in enumerate(sentences):
            if i:
                self.clock += rng.randrange(120, 450)
            length = len(text.split()) * rng.randrange(330, 451)
            out.append({"start": self.clock, "end": self.clock + length, "text": text})
            self.talk[speaker] = self.talk.get(speaker, 0) + length
            self.clock += length
        self.monologues.append({"speakerId": speaker, "topic": topic, "sentences": out})


def _tone_for(rng: random.Random, at_risk_client: bool, recent: bool) -> Tone:
    if at_risk_client:
        weights = [0, 1, 9] if recent else [2, 4, 4]
    else:
        weights = [12, 7, 1]
    return rng.choices(["positive", "neutral", "at_risk"], weights=weights)[0]  # type: ignore[return-value]


def generate_demo(today: date, seed: int = 7) -> DemoData:
    """Clients, contacts and Gong-shaped calls for the 90 days before `today`."""
    rng = random.Random(seed)
    team = [
        {"name": name, "title": title, "email": name.lower().replace(" ", ".") + f"@{INTERNAL_DOMAIN}",
         "userId": _digits(rng, 15)}
        for name, title in TEAM
    ]  # fmt: skip
    csms = [m for m in team if "Customer Success" in m["title"]]
    clients: list[Client] = []
    contacts: list[Contact] = []
    by_client: dict[str, list[Contact]] = {}
    for name in COMPANY_NAMES:
        segment, units, arr = _segment(rng)
        csm = rng.choice(csms)
        client = Client(
            id=_digits(rng, 10),
            name=name,
            domain=_domain(name),
            industry=rng.choice(INDUSTRIES),
            segment=segment,
            city=rng.choice(CITIES),
            units_managed=units,
            arr=arr,
            csm_name=csm["name"],
            csm_email=csm["email"],
        )
        clients.append(client)
        people = []
        for title in rng.sample(CONTACT_TITLES, rng.randint(2, 5)):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            people.append(
                Contact(
                    id=_digits(rng, 11),
                    client_id=client.id,
                    first_name=first,
                    last_name=last,
                    email=f"{first.lower()}.{last.lower()}@{client.domain}".replace("á", "a"),
                    title=title,
                    phone=f"+1-555-{rng.randrange(100, 1000)}-{rng.randrange(1000, 10000)}",
                )
            )
        contacts.extend(people)
        by_client[client.id] = people

    at_risk = {c.id for c in rng.sample(clients, 9)}
    calls: list[dict[str, Any]] = []
    transcripts: list[dict[str, Any]] = []
    for client in clients:
        for _ in range(rng.randint(3, 8)):
            days_ago = rng.randint(1, 89)
            started = datetime.combine(today - timedelta(days=days_ago), time(rng.randrange(14, 22)), tzinfo=UTC)
            started += timedelta(minutes=rng.choice([0, 0, 1, 2, 3, 30, 31]), seconds=rng.randrange(60))
            tone = _tone_for(rng, client.id in at_risk, days_ago <= 60)
            call, transcript = _call(rng, client, by_client[client.id], team, csms, started, tone)
            calls.append(call)
            transcripts.append(transcript)
    order = sorted(range(len(calls)), key=lambda i: (calls[i]["metaData"]["started"], calls[i]["metaData"]["id"]))
    calls = [calls[i] for i in order]
    transcripts = [transcripts[i] for i in order]
    records = {"totalRecords": len(calls), "currentPageSize": len(calls), "currentPageNumber": 0}
    return DemoData(
        clients=clients,
        contacts=contacts,
        calls_extensive={"requestId": _request_id(rng), "records": records, "calls": calls},
        transcripts={"requestId": _request_id(rng), "records": records, "callTranscripts": transcripts},
        firmographics=_firmographics(clients, seed),
    )


TECHNOLOGIES = ["Yardi Voyager", "AppFolio", "RealPage", "Buildium", "Entrata", "QuickBooks", "Salesforce",
                "HubSpot", "Rent Manager", "DocuSign"]  # fmt: skip


def _firmographics(clients: list[Client], seed: int) -> list[Organization]:
    """What a data provider would know of the clients' firms; one in eight is unknown to it, as happens."""
    rng = random.Random(seed * 1_000 + 1)  # its own stream: adding it changed nothing else in the demo
    known = []
    for index, client in enumerate(clients):
        if index % 8 == 5:
            continue
        city, _, state = (client.city or "").partition(", ")
        units = client.units_managed or 0
        known.append(
            Organization(
                name=client.name,
                domain=client.domain,
                industry=client.industry,
                employees=max(5, units // rng.randrange(45, 80)),
                units_managed=units,
                annual_revenue=round(units * rng.uniform(90, 160), -3),
                city=city or None,
                state=state or None,
                country="United States",
                founded_year=rng.randrange(1978, 2019),
                linkedin_url=f"http://www.linkedin.com/company/{(client.domain or '').removesuffix('.com')}",
                technologies=rng.sample(TECHNOLOGIES, 3),
            )
        )
    return known


def _request_id(rng: random.Random) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(19))


def _account_context(client: Client, contact: Contact | None = None) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {"objectType": "Account", "objectId": client.id, "fields": [{"name": "Name", "value": client.name}]}
    ]
    if contact is not None:
        objects.append({"objectType": "Contact", "objectId": contact.id, "fields": []})
    return [{"system": "HubSpot", "objects": objects}]


def _call(
    rng: random.Random,
    client: Client,
    people: list[Contact],
    team: list[dict[str, str]],
    csms: list[dict[str, str]],
    started: datetime,
    tone: Tone,
) -> tuple[dict[str, Any], dict[str, Any]]:
    call_id = _digits(rng, 19)
    csm = next((m for m in csms if m["email"] == client.csm_email), csms[0])
    internal = [csm] + ([rng.choice([m for m in team if m is not csm])] if rng.random() < 0.35 else [])
    external = rng.sample(people, min(len(people), rng.choice([1, 1, 2, 2, 3])))
    speaker = {id(p): _digits(rng, 19) for p in (*internal, *external)}
    fill = {
        "client": client.name,
        "rep": csm["name"].split()[0],
        "contact": external[0].first_name or "there",
        "module": rng.choice(MODULES),
        "units": f"{client.units_managed:,}",
        "month": (started + timedelta(days=rng.randrange(30, 200))).strftime("%B"),
        "pct": str(rng.choice([10, 12, 15, 18, 20, 25])),
        "competitor": rng.choice(COMPETITORS),
    }

    def fmt(text: str) -> str:
        return text.format(**fill)

    t = _Transcript(rng)
    rep, lead = speaker[id(internal[0])], speaker[id(external[0])]

    def client_voice() -> str:
        return speaker[id(rng.choice(external))]

    def rep_voice() -> str:
        return speaker[id(rng.choice(internal))]

    hello, reply = rng.choice(OPENINGS)
    t.say(rep, [fmt(hello)], "Small Talk")
    t.say(lead, [fmt(reply)], "Small Talk")
    t.say(rep, [fmt(rng.choice(AGENDAS))], None)
    dial_in = _digits(rng, 19) if rng.random() < 0.06 else None
    if dial_in:
        t.say(dial_in, [rng.choice(DIAL_IN)])
    risk_kinds = rng.sample(list(RISKS), rng.randint(2, 3)) if tone == "at_risk" else []
    answers = {"positive": POSITIVE_ANSWERS, "neutral": NEUTRAL_ANSWERS, "at_risk": NEGATIVE_ANSWERS}[tone]
    for topic, question in rng.sample(QUESTIONS, rng.randint(5, 8)):
        t.say(rep_voice(), [fmt(question)], topic)
        said = [fmt(a) for a in rng.sample(answers, rng.randint(1, 2))]
        if risk_kinds and rng.random() < 0.6:
            kind = risk_kinds.pop()
            said.append(fmt(rng.choice(RISKS[kind])))
            topic = "Pricing" if kind in ("pricing", "budget") else topic
        elif tone == "positive" and rng.random() < 0.06:
            said.append(fmt(rng.choice(NEUTRAL_COMPETITOR)))
        t.say(client_voice(), said, topic)
        reply_text = [rng.choice(REP_REPLIES[tone])]
        if tone == "at_risk" and rng.random() < 0.5:
            reply_text.append(rng.choice(RISK_PROBES))
            t.say(rep_voice(), reply_text, topic)
            t.say(client_voice(), [fmt(rng.choice(NEUTRAL_ANSWERS))], topic)
        else:
            t.say(rep_voice(), reply_text, topic)
    for kind in risk_kinds:  # whatever risks did not come up in answers come up before the close
        t.say(client_voice(), [fmt(rng.choice(RISKS[kind]))], "Pricing" if kind in ("pricing", "budget") else None)
        t.say(rep, [rng.choice(REP_REPLIES["at_risk"])], None)
    close, bye = rng.choice(CLOSINGS)
    t.say(rep, [fmt(close)], "Next Steps")
    t.say(lead, [fmt(bye)], "Next Steps")

    duration_s = (t.clock + rng.randrange(2000, 9000)) // 1000
    parties = [
        {"id": _digits(rng, 16), "emailAddress": m["email"], "name": m["name"], "title": m["title"],
         "userId": m["userId"], "speakerId": speaker[id(m)], "affiliation": "Internal", "methods": ["Invitee"]}
        for m in internal
    ] + [
        {"id": _digits(rng, 16), "emailAddress": p.email, "name": f"{p.first_name} {p.last_name}", "title": p.title,
         "speakerId": speaker[id(p)], "affiliation": "External", "phoneNumber": p.phone, "methods": ["Invitee"],
         "context": _account_context(client, p)}
        for p in external
    ]  # fmt: skip
    purpose = rng.choice(PURPOSES if tone != "at_risk" else [*PURPOSES, "Support Escalation", "Renewal Discussion"])
    internal_ms = sum(t.talk.get(speaker[id(m)], 0) for m in internal)
    spoken_ms = internal_ms + sum(t.talk.get(speaker[id(p)], 0) for p in external)
    questions = [s["text"] for m in t.monologues for s in m["sentences"] if s["text"].endswith("?")]
    company_ids = {speaker[id(m)] for m in internal}
    company_questions = sum(
        1 for m in t.monologues if m["speakerId"] in company_ids for s in m["sentences"] if s["text"].endswith("?")
    )
    mentions = [
        {"startTime": s["start"] / 1000, "speakerId": m["speakerId"]}
        for m in t.monologues
        for s in m["sentences"]
        if any(c in s["text"] for c in COMPETITORS)
    ]
    call = {
        "metaData": {
            "id": call_id,
            "url": f"https://app.gong.io/call?id={call_id}",
            "title": f"{client.name} <> Pay Ready | {purpose}",
            "scheduled": started.replace(second=0).isoformat().replace("+00:00", "Z"),
            "started": started.isoformat().replace("+00:00", "Z"),
            "duration": duration_s,
            "primaryUserId": csm["userId"],
            "direction": "Conference",
            "system": rng.choice(["Zoom", "Google Meet"]),
            "scope": "External",
            "media": rng.choice(["Video", "Video", "Audio"]),
            "language": "eng",
            "workspaceId": WORKSPACE_ID,
            "purpose": purpose,
            "meetingUrl": f"https://zoom.us/j/{_digits(rng, 10)}",
            "isPrivate": False,
            "calendarEventId": _request_id(rng),
        },
        "context": _account_context(client),
        "parties": parties,
        "content": {
            "topics": _topics(t.monologues),
            "trackers": [
                {
                    "id": "competitors",
                    "name": "Competitors",
                    "count": len(mentions),
                    "type": "KEYWORD",
                    "occurrences": mentions,
                },
            ],
            "brief": f"{purpose} with {client.name}.",
            "pointsOfInterest": {"actionItems": [{"snippet": fmt(close)}]},
        },
        "interaction": {
            "speakers": [
                {
                    "id": sid,
                    "userId": next((m["userId"] for m in internal if speaker[id(m)] == sid), None),
                    "talkTime": round(ms / 1000, 1),
                }
                for sid, ms in t.talk.items()
            ],
            "interactionStats": [
                {"name": "Talk Ratio", "value": round(internal_ms / spoken_ms, 2) if spoken_ms else 0},
                {"name": "Longest Monologue", "value": _longest_monologue_s(t.monologues)},
                {"name": "Interactivity", "value": round(len(t.monologues) / max(1, duration_s / 60), 1)},
                {"name": "Patience", "value": round(rng.uniform(0.6, 1.6), 2)},
            ],
            "questions": {"companyCount": company_questions, "nonCompanyCount": len(questions) - company_questions},
        },
    }
    return call, {"callId": call_id, "transcript": t.monologues}


def _topics(monologues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seconds: dict[str, float] = {}
    for m in monologues:
        if m["topic"] and m["sentences"]:
            span = (m["sentences"][-1]["end"] - m["sentences"][0]["start"]) / 1000
            seconds[m["topic"]] = seconds.get(m["topic"], 0) + span
    return [{"name": name, "duration": round(s)} for name, s in sorted(seconds.items())]


def _longest_monologue_s(monologues: list[dict[str, Any]]) -> float:
    longest = 0
    for m in monologues:
        if m["sentences"]:
            longest = max(longest, m["sentences"][-1]["end"] - m["sentences"][0]["start"])
    return round(longest / 1000, 1)
