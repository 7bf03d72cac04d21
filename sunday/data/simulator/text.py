"""Vocabulary for generated names, ticket titles, descriptions and comments.

Ticket text is built from skill-specific objects and sentences, so a title or description carries signal about the
skills a task needs (as in real trackers), with generic words mixed in. Everything is assembled with vectorised
``pyarrow.compute`` string joins over index arrays drawn by the caller.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SKILL_OBJECTS: dict[str, tuple[str, ...]] = {
    "backend": ("API endpoint", "database migration", "auth service", "rate limiter", "webhook handler",
                "caching layer", "GraphQL resolver", "job queue worker", "REST pagination", "search indexer"),
    "frontend": ("settings page", "dashboard widget", "dropdown component", "form validation", "board view",
                 "dark mode theme", "table pagination", "drag-and-drop list", "toast notifications", "CSS grid layout"),
    "data": ("ETL pipeline", "warehouse table", "dbt model", "usage metrics report", "Airflow DAG",
             "event tracking schema", "data quality check", "SQL query", "retention dashboard", "Kafka consumer"),
    "devops": ("CI pipeline", "Kubernetes deployment", "Terraform module", "Helm chart", "load balancer config",
               "monitoring alerts", "Docker image", "autoscaling policy", "backup job", "staging environment"),
    "design": ("onboarding flow mockups", "icon set", "design system tokens", "empty state illustrations",
               "Figma prototype", "color palette", "typography scale", "user journey map", "wireframes",
               "style guide"),
    "qa": ("regression test suite", "end-to-end tests", "flaky test", "test plan", "smoke tests",
           "load test scenario", "bug bash checklist", "Cypress specs", "test data fixtures", "release checklist"),
    "mobile": ("iOS push notifications", "Android widget", "offline sync", "React Native screen", "app store release",
               "deep links", "mobile login screen", "SwiftUI view", "Kotlin coroutine handling",
               "crash reporting SDK"),
    "docs": ("API reference", "onboarding guide", "release notes", "help center article", "changelog", "README",
             "tutorial script", "FAQ page", "architecture doc", "runbook"),
    "security": ("SSO integration", "permission model", "vulnerability scan", "secrets rotation", "audit log",
                 "CSP headers", "2FA enrollment", "pentest findings", "encryption at rest", "OAuth scopes"),
    "ml": ("recommendation model", "feature store", "embedding service", "training pipeline", "model monitoring",
           "ranking experiment", "inference endpoint", "labeling workflow", "A/B test analysis",
           "classifier threshold"),
}

# (prefix, suffix) around a skill object: "<prefix><object><suffix>"
SKILL_SENTENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "backend": (("The ", " returns inconsistent responses under concurrent requests."),
                ("We need server-side changes to the ", " and the related database schema."),
                ("Latency of the ", " exceeds our p95 budget; profile the service and fix the hot path."),
                ("Expose the ", " through the public API with proper error codes.")),
    "frontend": (("The ", " renders incorrectly on small screens and breaks keyboard navigation."),
                 ("Rebuild the ", " as a reusable React component with loading states."),
                 ("Users report the ", " feels sluggish; reduce re-renders in the UI."),
                 ("Update the ", " to match the new layout and accessibility guidelines.")),
    "data": (("The ", " produces duplicate rows after the last schema change."),
             ("Backfill the ", " and document the columns for analysts."),
             ("Add the ", " to the nightly batch and alert on freshness."),
             ("Numbers in the ", " do not match finance; reconcile the SQL joins.")),
    "devops": (("The ", " fails intermittently on deploys to production."),
               ("Move the ", " to infrastructure as code and review the cluster limits."),
               ("Cut the build time of the ", " by caching layers and parallel stages."),
               ("Set up the ", " for the new region with on-call alerts.")),
    "design": (("Create the ", " for the redesigned navigation and share for critique."),
               ("The ", " is inconsistent with our brand; align spacing and contrast."),
               ("Run a quick usability test on the ", " and iterate on the visuals."),
               ("Hand off the ", " with annotated specs for engineering.")),
    "qa": (("The ", " is failing randomly in CI; find the root cause and stabilise it."),
           ("Extend the ", " to cover the permission and billing edge cases."),
           ("Write the ", " for the upcoming release and track defects found."),
           ("Automate the ", " so manual verification is no longer needed.")),
    "mobile": (("The ", " crashes on older Android devices and some iPhones."),
               ("Implement the ", " for both iOS and Android builds."),
               ("Battery usage spikes because of the ", "; reduce background work on the device."),
               ("Prepare the ", " for review by the app stores.")),
    "docs": (("The ", " is outdated after the last release; rewrite the affected sections."),
             ("Write the ", " with examples and screenshots for customers."),
             ("Support tickets show confusion about the ", "; clarify the wording."),
             ("Publish the ", " on the help center and link it from the product.")),
    "security": (("The ", " allows access it should not; tighten the permission checks."),
                 ("Roll out the ", " for enterprise customers with audit trails."),
                 ("Address the ", " reported by the security review before the audit."),
                 ("Harden the ", " against token leakage and replay attacks.")),
    "ml": (("The ", " degraded after the last retraining; investigate drift in the features."),
           ("Ship the ", " behind a flag and compare offline metrics with the baseline."),
           ("Speed up the ", " so predictions stay under the latency budget."),
           ("Tune the ", " and report precision and recall per segment.")),
}

SECONDARY_SENTENCES: dict[str, tuple[str, ...]] = {
    "backend": ("Requires a change to the API contract on the server.", "The service and database queries need updating too."),
    "frontend": ("The UI needs updating to reflect the new state.", "Front-end components and styles are affected."),
    "data": ("Make sure analytics events and warehouse tables stay consistent.", "Dashboards built on this data must be checked."),
    "devops": ("Coordinate the rollout with on-call and update the deployment config.", "Infrastructure and CI need changes for this."),
    "design": ("Align with the latest Figma designs before building.", "Needs input from design on the visuals."),
    "qa": ("Add regression tests covering the edge cases.", "QA should verify this on staging before release."),
    "mobile": ("Verify the behaviour in the iOS and Android apps.", "The mobile apps need the same change."),
    "docs": ("Update the user documentation afterwards.", "Release notes and help articles must mention this."),
    "security": ("Get a security review of the access checks.", "Check the change against our compliance requirements."),
    "ml": ("Evaluate the impact on model metrics offline first.", "Retrain the model once the change lands."),
}

CLOSINGS = (
    "", "", "Agreed in planning.", "See the linked thread for context.", "Customer reported via support.",
    "Acceptance: reviewed, tested and merged.", "Part of the quarterly goals.", "Follow-up from the retro.",
)

VERBS = {  # by task kind: 0 bug, 1 feature, 2 chore
    0: ("Fix", "Investigate", "Resolve", "Debug"),
    1: ("Implement", "Add", "Build", "Create", "Support"),
    2: ("Refactor", "Update", "Clean up", "Upgrade", "Migrate", "Optimize"),
}
BUG_SYMPTOMS = ("crash in", "timeout in", "wrong totals in", "broken state in", "memory leak in",
                "race condition in", "regression in", "errors from")
AREAS = ("for board view", "in timeline", "for automations", "in inbox", "for workload view", "on dashboards",
         "for integrations", "in docs editor", "for guest users", "in billing")

COMMENTS_NEUTRAL = (
    "Looking into this.", "Pushed a first draft, ready for feedback.", "Can we clarify the acceptance criteria?",
    "Pairing on this tomorrow.", "Added notes from the sync.", "Reproduced locally.", "LGTM after the last changes.",
    "Fixed in the latest build, please verify.", "Linked the related ticket.", "Updated the description.",
    "Will pick this up after standup.", "Demo went well.",
)
COMMENTS_TROUBLE = (
    "This is taking longer than estimated.", "Blocked on review from another team.",
    "I am not familiar with this part of the code, need some help.", "Need access to staging to continue.",
    "Waiting on input before I can continue.", "Scope is bigger than we thought.",
    "Had to context-switch to an urgent issue, resuming later.", "Customer is asking for an update.",
)
COMMENTS = COMMENTS_NEUTRAL + COMMENTS_TROUBLE

FIRST_NAMES = (
    "Ada", "Ben", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Keiko", "Liam", "Maya",
    "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe",
    "Amara", "Bruno", "Clara", "Diego", "Emil", "Fatima", "Gustav", "Hana", "Ivan", "Julia", "Kofi", "Lea",
    "Mateo", "Nina",
)
LAST_NAMES = (
    "Adler", "Barros", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ivanova", "Jensen", "Kim",
    "Larsen", "Moreau", "Nakamura", "Okafor", "Petrov", "Quist", "Rossi", "Schmidt", "Tanaka", "Usman", "Varga",
    "Weber", "Xu", "Yilmaz", "Zimmer", "Andersson", "Bianchi", "Costa", "Dias", "Evans", "Novak", "Silva",
    "Kowalski", "Mensah", "Horvat", "Lopez", "Singh", "Brennan", "Sato",
)
COMPANY_A = ("Blue", "Bright", "North", "Swift", "Quiet", "Bold", "Clear", "Green", "Iron", "Silver", "Lucky", "Open")
COMPANY_B = ("Harbor", "Peak", "Forge", "Leaf", "Signal", "Orbit", "Works", "Labs", "Field", "Bridge", "Stack", "Cloud")
CODENAMES = (
    "Atlas", "Borealis", "Comet", "Delta", "Ember", "Falcon", "Granite", "Helix", "Ion", "Juniper", "Kestrel",
    "Lumen", "Meridian", "Nimbus", "Onyx", "Pulsar", "Quartz", "Raven", "Sierra", "Tundra", "Umbra", "Vortex",
    "Willow", "Zephyr",
)
PROJECT_THEMES = ("roadmap", "revamp", "migration", "launch", "v2", "cleanup", "integration", "pilot", "hardening",
                  "GA release")
TEAM_ARCHETYPES: tuple[tuple[str, dict[str, float]], ...] = (
    ("Platform", {"backend": 3, "devops": 2, "security": 1}),
    ("Web", {"frontend": 3, "design": 1.5, "backend": 1, "qa": 1}),
    ("Data", {"data": 3, "ml": 1.5, "backend": 1}),
    ("Mobile", {"mobile": 3, "design": 1, "qa": 1, "backend": 0.5}),
    ("Growth", {"frontend": 2, "data": 1.5, "design": 1, "ml": 0.5}),
    ("Quality", {"qa": 3, "devops": 1, "docs": 1}),
    ("Trust", {"security": 3, "backend": 1.5, "devops": 1}),
    ("Content", {"docs": 3, "design": 1.5, "frontend": 0.5}),
    ("Intelligence", {"ml": 3, "data": 2, "backend": 1}),
)
TEAM_SUFFIXES = ("", "Core", "North", "South", "Squad", "Tigers", "Owls", "Foxes", "One", "Two")
TIMEZONES = ("Europe/Berlin", "Europe/London", "America/New_York", "America/Los_Angeles", "Asia/Kolkata",
             "Asia/Tokyo", "Australia/Sydney", "America/Sao_Paulo", "Europe/Paris", "Asia/Singapore")


def arr(values) -> pa.Array:
    return pa.array(list(values), type=pa.string())


def join(*parts, sep: str = " ") -> pa.Array:
    """Element-wise join of string arrays (or scalars); empty parts leave no doubled separator when sep=''."""
    return pc.binary_join_element_wise(*parts, sep)


def pick(vocab: pa.Array, idx: np.ndarray) -> pa.Array:
    return vocab.take(pa.array(np.asarray(idx, dtype=np.int64)))


class TicketText:
    """Precomputed flat vocabularies for the skills of one config."""

    def __init__(self, skills: tuple[str, ...]):
        self.skills = skills
        objs, obj_off, sent_pre, sent_suf, sent_off, sec, sec_off = [], [0], [], [], [0], [], [0]
        for s in skills:
            objs += SKILL_OBJECTS[s]
            obj_off.append(len(objs))
            for pre, suf in SKILL_SENTENCES[s]:
                sent_pre.append(pre)
                sent_suf.append(suf)
            sent_off.append(len(sent_pre))
            sec += SECONDARY_SENTENCES[s]
            sec_off.append(len(sec))
        self.objects, self.obj_off = arr(objs), np.array(obj_off)
        self.sent_pre, self.sent_suf, self.sent_off = arr(sent_pre), arr(sent_suf), np.array(sent_off)
        self.secondary, self.sec_off = arr(sec + [""]), np.array(sec_off)
        flat_verbs: list[str] = []
        self.verb_base = {}
        for k in (0, 1, 2):
            self.verb_base[k] = len(flat_verbs)
            flat_verbs += VERBS[k]
        self.verbs = arr(flat_verbs)
        self.symptoms = arr(BUG_SYMPTOMS + ("",))
        self.areas = arr(AREAS + ("",) * len(AREAS))  # half the titles have no product area
        self.closings = arr(CLOSINGS)

    @staticmethod
    def _within(rng: np.random.Generator, off: np.ndarray, skill: np.ndarray) -> np.ndarray:
        lo, hi = off[skill], off[skill + 1]
        return lo + (rng.random(len(skill)) * (hi - lo)).astype(np.int64)

    def titles_and_descriptions(self, rng: np.random.Generator, kind: np.ndarray, primary: np.ndarray,
                                secondary: np.ndarray) -> tuple[pa.Array, pa.Array]:
        """kind: 0 bug / 1 feature / 2 chore; primary: skill index; secondary: skill index or -1."""
        n = len(kind)
        obj = pick(self.objects, self._within(rng, self.obj_off, primary))
        verb_draw = rng.random(n)
        verb_idx = np.zeros(n, dtype=np.int64)
        for k in (0, 1, 2):
            m = kind == k
            verb_idx[m] = self.verb_base[k] + (verb_draw[m] * len(VERBS[k])).astype(np.int64)
        verb = pick(self.verbs, verb_idx)
        symptom_idx = (rng.random(n) * len(BUG_SYMPTOMS)).astype(np.int64)
        symptom = pick(self.symptoms, np.where(kind == 0, symptom_idx, len(BUG_SYMPTOMS)))
        area = pick(self.areas, (rng.random(n) * len(self.areas)).astype(np.int64))
        title = _tidy(join(verb, symptom, obj, area, sep=" "))

        sent_idx = self._within(rng, self.sent_off, primary)
        first = join(pick(self.sent_pre, sent_idx), obj, pick(self.sent_suf, sent_idx), sep="")
        has_sec = secondary >= 0
        sec_skill = np.where(has_sec, secondary, 0)
        sec_idx = np.where(has_sec, self._within(rng, self.sec_off, sec_skill), len(self.secondary) - 1)
        second = pick(self.secondary, sec_idx)
        closing = pick(self.closings, (rng.random(n) * len(CLOSINGS)).astype(np.int64))
        return title, _tidy(join(first, second, closing, sep=" "))


def _tidy(text: pa.Array) -> pa.Array:
    """Drop the doubled / trailing blanks left by empty parts."""
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(text, r"\s{2,}", " "))
