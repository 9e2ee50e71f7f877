"""The demo's knowledge base: Pay Ready's playbooks, product notes, competitor notes, pricing policy and meeting
notes, as a revenue team keeps them. Markdown; the demo ingests them like any document."""

from __future__ import annotations

from datetime import date

from sophia_mcp.domain.model import Model


class DemoDocument(Model):
    slug: str
    title: str
    type: str
    tags: list[str]
    date: date
    text: str


def _doc(slug: str, title: str, type: str, tags: list[str], day: str, text: str) -> DemoDocument:
    return DemoDocument(slug=slug, title=title, type=type, tags=tags, date=date.fromisoformat(day), text=text.strip())


DOCUMENTS = [
    _doc(
        "onboarding-playbook",
        "Onboarding playbook",
        "playbook",
        ["onboarding", "customer-success"],
        "2026-03-02",
        """
# Onboarding playbook

Every new client gets a named implementation manager and a six-week onboarding plan. The customer success
manager joins from the kickoff call so the client meets the person who will own the account afterwards.

## Week 1: kickoff

Confirm the go-live date, the portfolio size and who signs off on the chart of accounts. Collect the rent roll
export and bank details for the operating and trust accounts. Send the data-migration template the same day.

## Weeks 2 to 4: data migration and configuration

The implementation manager imports the rent roll, lease terms and open balances, then runs a reconciliation
against the previous system. Owners and vendors are invited to their portals in week 4. Any balance difference
over $500 blocks go-live until it is explained.

## Weeks 5 and 6: training and go-live

Two live training sessions for property managers and one for accounting. Go-live happens on the first business
day of a month so rent collection starts on a clean period. After go-live the account moves to the customer
success manager, who holds a 30-day check-in.

## When onboarding slips

If go-live moves more than two weeks, the implementation manager flags the account as at risk in the CRM and
the customer success manager calls the client's sponsor within two business days.
""",
    ),
    _doc(
        "renewal-playbook",
        "Renewal and churn-risk playbook",
        "playbook",
        ["renewal", "churn", "customer-success"],
        "2026-05-11",
        """
# Renewal and churn-risk playbook

Renewal conversations start 120 days before the contract ends. The customer success manager reviews client
health, product usage and open support tickets before the first renewal call.

## Signals of churn risk

A health score under 70, a client who mentions evaluating AppFolio, Yardi or Entrata, a new decision maker, or
budget cuts announced on a call. Two or more signals together make the account at risk.

## Save plays

For an at-risk account, book an executive sponsor call within five business days. Offer a free optimisation
workshop before offering any discount. A retention discount may not exceed 10% of annual recurring revenue and
needs the VP of Customer Success to approve it. Never offer a discount on a first call.

## Escalation path

Escalate to the VP of Customer Success when a client gives written notice of cancellation or asks for a
contract exit. The VP decides within three business days whether to involve the CEO.
""",
    ),
    _doc(
        "qbr-playbook",
        "Quarterly business review guide",
        "playbook",
        ["qbr", "customer-success"],
        "2026-02-16",
        """
# Quarterly business review guide

A quarterly business review (QBR) is held with every Mid-Market and Enterprise client; SMB clients get a
business review twice a year.

## Agenda

Start with the client's goals from the last review, then show on-time rent collection rate, payment adoption,
maintenance request resolution time and support tickets. End with three recommendations and agreed next steps.

## Preparation

Pull the client's health score and its reasons two days before the meeting. Invite the client's finance lead
when online payment adoption is under 60%, because card and ACH fees are usually the topic.
""",
    ),
    _doc(
        "discovery-playbook",
        "Sales discovery call playbook",
        "playbook",
        ["sales", "discovery"],
        "2026-01-20",
        """
# Sales discovery call playbook

The first call with a prospect qualifies the deal. Talk less than 40% of the time and ask at least eight open
questions.

## What to learn

Number of units and doors managed, property types (single-family, multifamily, HOA, student housing), current
software and contract end date, who signs, budget cycle, and the pain that started the search.

## Qualification

A qualified opportunity manages at least 300 units, has a software contract ending within twelve months and a
named economic buyer. Anything smaller goes to the self-serve SMB plan.

## After the call

Send a recap within 24 hours and book the product demo before hanging up.
""",
    ),
    _doc(
        "pricing-policy",
        "Pricing policy",
        "pricing_policy",
        ["pricing", "discounts", "contracts"],
        "2026-01-05",
        """
# Pricing policy

Pay Ready is priced per unit per month, billed annually or monthly.

## Plans and list prices

Essentials costs $1.25 per unit per month with a $250 monthly minimum. Growth costs $1.75 per unit per month and
adds owner portals and advanced reporting. Enterprise is quoted for portfolios above 15,000 units and includes
a dedicated customer success manager and single sign-on.

## Annual prepayment

Clients who pay a year in advance receive a 10% discount on the subscription.

## Discount approvals

Sales managers may approve discounts up to 15%. Discounts between 15% and 25% need approval from the VP of
Sales. Anything above 25% needs the CFO. Multi-year contracts may lock the price for up to three years.

## Price increases

List prices may rise by at most 5% a year at renewal, announced 90 days ahead.

## Nonprofit housing

Nonprofit and affordable-housing providers receive 20% off list prices without further approval.
""",
    ),
    _doc(
        "product-payments",
        "Product note: payments",
        "product_note",
        ["product", "payments"],
        "2026-04-14",
        """
# Product note: payments

Residents pay rent by ACH bank transfer, debit or credit card, or cash at partner retail locations.

## Fees

ACH payments cost the resident nothing; the property manager pays $1.50 per ACH payment. Card payments carry a
2.95% convenience fee paid by the resident. Cash payments at retail partners cost $3.99.

## Payout timing

ACH funds reach the property's trust account in two business days; card funds the next business day.

## Autopay and partial payments

Residents can set up autopay on any day of the month. Property managers decide whether partial payments are
allowed, per property, and can block payments from residents under eviction.
""",
    ),
    _doc(
        "product-maintenance",
        "Product note: resident portal and maintenance",
        "product_note",
        ["product", "maintenance", "residents"],
        "2026-06-08",
        """
# Product note: resident portal and maintenance

The resident portal and mobile app let residents pay rent, sign renewals and submit maintenance requests with
photos.

## Maintenance requests

Requests are routed to in-house technicians or outside vendors by category. Emergency requests (no heat, water
leak, gas smell) page the on-call technician immediately, day or night. Vendors update status from their own
portal, and residents get a text message at every change.

## Service levels

The standard target is to resolve non-emergency requests within three business days; the dashboard shows each
property's median resolution time.
""",
    ),
    _doc(
        "product-integrations",
        "Product note: accounting integrations",
        "product_note",
        ["product", "integrations", "accounting"],
        "2026-07-21",
        """
# Product note: accounting integrations

Pay Ready keeps its own general ledger with trust accounting, and integrates with the systems clients keep.

## QuickBooks Online

Two-way sync of journal entries every night; owners' statements can be sent from QuickBooks.

## Yardi Voyager and AppFolio

For clients moving off Yardi Voyager or AppFolio, the migration tool imports the rent roll, ledgers and
vendor lists. There is no live two-way sync with Yardi or AppFolio.

## Open API

A REST API with webhooks is included in Growth and Enterprise plans, limited to 10 requests per second.
""",
    ),
    _doc(
        "release-notes-q3",
        "Release notes: Q3 2026",
        "product_note",
        ["product", "release-notes"],
        "2026-09-30",
        """
# Release notes: Q3 2026

## Owner portal redesign

Owners now see cash flow, occupancy and maintenance spend on one page, and can download statements as PDF.

## Smart late fees

Late fees can be set per property with grace periods and caps that follow state law in 38 states.

## Bank reconciliation

Automatic bank reconciliation matches 95% of transactions without manual work for clients on Growth and up.

## Retired

The legacy desktop report builder was retired on September 1; its reports moved to the new reporting module.
""",
    ),
    _doc(
        "competitor-appfolio",
        "Competitor note: AppFolio",
        "competitor_note",
        ["competitors", "appfolio"],
        "2026-08-03",
        """
# Competitor note: AppFolio

AppFolio Property Manager is the competitor we meet most often in Mid-Market deals.

## Where they win

Strong brand, a polished mobile app, and an all-in-one price for small portfolios under 500 units, where they
often undercut us.

## Where we win

Our trust accounting and bank reconciliation, faster payouts for ACH, and a named customer success manager from
2,500 units up. AppFolio's minimum unit counts and mandatory add-ons raise their total price for growing firms.

## Talk track

When a client says they are evaluating AppFolio, ask which add-ons were included in the quote and compare the
three-year total cost, not the first-year price.
""",
    ),
    _doc(
        "competitor-yardi",
        "Competitor note: Yardi",
        "competitor_note",
        ["competitors", "yardi"],
        "2026-08-03",
        """
# Competitor note: Yardi

Yardi Breeze targets small and mid-size managers; Yardi Voyager serves large enterprises.

## Where they win

Voyager is the standard in large multifamily and commercial portfolios, with deep accounting and a large
partner ecosystem.

## Where we win

Implementation in six weeks instead of the months a Voyager project takes, a modern resident app, and no
per-module pricing. Breeze customers who outgrow it often face a painful move to Voyager.

## Talk track

Ask how long their last Yardi upgrade took and how many modules they pay for separately.
""",
    ),
    _doc(
        "competitor-realpage",
        "Competitor note: RealPage",
        "competitor_note",
        ["competitors", "realpage"],
        "2026-08-10",
        """
# Competitor note: RealPage

RealPage (OneSite) sells to large multifamily operators, often bundled with revenue management.

## Where they win

Revenue-management pricing tools and relationships with institutional owners.

## Where we win

Simpler contracts, transparent per-unit pricing and faster implementation. Their revenue-management
product has faced regulatory scrutiny, which some clients raise themselves.
""",
    ),
    _doc(
        "competitor-buildium-entrata",
        "Competitor note: Buildium and Entrata",
        "competitor_note",
        ["competitors", "buildium", "entrata"],
        "2026-08-10",
        """
# Competitor note: Buildium and Entrata

## Buildium

Buildium is popular with very small portfolios and HOA managers because of its low entry price. Clients leave
it when they need trust accounting across many owners or better reporting.

## Entrata

Entrata is strong in student housing and large multifamily, with a broad suite of leasing and marketing tools.
Its contracts are long and its implementation is heavy; lead with our six-week onboarding and month-to-month
option for Essentials.
""",
    ),
    _doc(
        "security-faq",
        "Security and compliance FAQ",
        "policy",
        ["security", "compliance"],
        "2026-04-01",
        """
# Security and compliance FAQ

## Certifications

Pay Ready holds a SOC 2 Type II report, renewed every year; the current report is available under NDA.
Card payments are processed by a PCI DSS Level 1 provider; we never store full card numbers.

## Data

Client data is encrypted at rest with AES-256 and in transit with TLS 1.2 or later, and hosted in US data
centers. Backups are kept for 35 days. After a contract ends, client data is deleted within 90 days unless the
client asks for an export first.

## Access

Single sign-on with SAML is included in Enterprise. Every user action is kept in an audit log for seven years.
""",
    ),
    _doc(
        "support-policy",
        "Support and escalation policy",
        "policy",
        ["support", "sla"],
        "2026-03-23",
        """
# Support and escalation policy

## Hours

Support is available by chat and phone from 7am to 8pm Central time on business days. Enterprise clients get
24/7 support for urgent issues.

## Response times

Urgent issues (payments down, residents cannot pay) get a first response within one hour. High-priority issues
within four business hours, normal ones within one business day.

## Escalation

An urgent issue open for more than four hours is escalated to the head of support, and the client's customer
success manager is told.
""",
    ),
    _doc(
        "meeting-harborview-qbr",
        "Meeting notes: Harborview Residential QBR",
        "meeting_notes",
        ["meetings", "harborview-residential", "qbr"],
        "2026-10-15",
        """
# Meeting notes: Harborview Residential QBR

Attendees: Dana Reyes (CSM), Harborview's director of operations and controller.

## Highlights

On-time rent collection rose from 91% to 96% since go-live. Online payment adoption is 74%.

## Concerns

The controller asked about card convenience fees after residents complained. Harborview wants owner statements
delivered on the 5th of each month instead of the 10th.

## Next steps

Dana to send the fee comparison and schedule owner statements for the 5th. Next QBR in January.
""",
    ),
    _doc(
        "meeting-summit-escalation",
        "Meeting notes: Summit Ridge escalation",
        "meeting_notes",
        ["meetings", "summit-ridge", "escalation", "onboarding"],
        "2026-11-02",
        """
# Meeting notes: Summit Ridge escalation

Attendees: Leah Brandt (CSM), the implementation manager, Summit Ridge's COO.

## What happened

Go-live slipped three weeks because the opening balances from Yardi did not reconcile; the difference was
$4,200 across two trust accounts. The COO said they are looking at Yardi Breeze again if this drags on.

## Agreed

Our accounting lead reconciles the balances by Friday. Go-live moves to December 1. Summit Ridge gets a free
optimisation workshop after go-live. The account is flagged at risk until then.
""",
    ),
]
