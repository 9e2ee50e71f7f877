"""Tables that tune the workflows: competitors to watch for, health and lead-score weights, and which HubSpot
property holds each CRM field. Settings carry them; analysis reads them."""

from __future__ import annotations

from pydantic import BaseModel, Field

DEFAULT_CONTACT_PROPERTIES = {
    "first_name": "firstname",
    "last_name": "lastname",
    "email": "email",
    "title": "jobtitle",
    "phone": "phone",
    "company": "company",
    "city": "city",
    "state": "state",
    "country": "country",
    "linkedin_url": "hs_linkedin_url",
    "seniority": "sophia_seniority",
    "lead_score": "sophia_lead_score",
    "lead_grade": "sophia_lead_grade",
}
DEFAULT_COMPANY_PROPERTIES = {
    "name": "name",
    "domain": "domain",
    "industry": "industry",
    "city": "city",
    "units_managed": "sophia_units_managed",
    "arr": "sophia_arr",
    "segment": "sophia_segment",
}


class Competitor(BaseModel):
    """A competitor to watch for in calls; aliases are matched as whole words, case-insensitively."""

    name: str
    aliases: list[str] = Field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [self.name, *self.aliases]


DEFAULT_COMPETITORS = [
    Competitor(name="AppFolio", aliases=["App Folio", "Appfolio Property Manager"]),
    Competitor(name="Yardi", aliases=["Yardi Breeze", "Yardi Voyager", "Breeze"]),
    Competitor(name="RealPage", aliases=["Real Page", "OneSite"]),
    Competitor(name="Buildium", aliases=[]),
    Competitor(name="Entrata", aliases=[]),
]


class HealthWeights(BaseModel):
    """Weights of the client health components; they are normalised, so only their ratios matter."""

    sentiment: float = Field(default=0.35, ge=0)
    risk: float = Field(default=0.30, ge=0)
    engagement: float = Field(default=0.20, ge=0)
    competition: float = Field(default=0.15, ge=0)


class LeadScoreWeights(BaseModel):
    """Points of the lead score, by factor; the defaults add up to 100 at most. See analysis/lead_score.py."""

    seniority: dict[str, float] = Field(
        default_factory=lambda: {"executive": 25.0, "vp": 20.0, "director": 15.0, "manager": 10.0, "staff": 4.0}
    )
    size_tiers: list[tuple[int, float]] = Field(
        default_factory=lambda: [(15000, 20.0), (2500, 14.0), (500, 8.0), (0, 3.0)],
        description="(units managed at least, points), largest first.",
    )
    employee_tiers: list[tuple[int, float]] = Field(
        default_factory=lambda: [(1000, 20.0), (250, 14.0), (50, 8.0), (0, 3.0)],
        description="(employees at least, points), largest first; used when units managed are unknown.",
    )
    industry: dict[str, float] = Field(
        default_factory=lambda: {
            "Property Management": 15.0,
            "Multifamily": 15.0,
            "HOA Management": 10.0,
            "Student Housing": 10.0,
            "Commercial Property": 6.0,
            "Real Estate": 10.0,
        },
        description="Industry -> points; names match case-insensitively (Apollo spells them in lower case).",
    )
    points_per_recent_call: float = 5
    engagement_cap: float = 20
    health_tiers: list[tuple[float, float]] = Field(
        default_factory=lambda: [(80.0, 20.0), (70.0, 12.0), (50.0, 5.0), (0.0, 0.0)],
        description="(client health at least, points), highest first.",
    )
    health_unknown: float = 8
