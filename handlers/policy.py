"""Who may do what: one access policy, read from configuration, checked in one place.

Searching, trying and evaluating are open to everyone unless the policy narrows them; fine-tuning,
deploying and importing spend money or publish models, so nobody may do them until the policy
allows it; cancelling someone else's job is for admins and whoever the policy names. Admins may
do everything, and are who a refusal tells people to ask.

A rule allows users (`U…`, or a Teams user's Entra object id), Slack user groups (`S…` ids or
`@handle`s), Entra groups (by object id, for Teams users: bot/teams/graph.py asks Microsoft Graph
which of them a user belongs to), and channels (`C…`, or a Teams conversation id), or `everyone`. The policy comes from the YAML file named by FMBOT_POLICY, with FMBOT_ADMINS adding
admins from the environment:

    admins: [U012ADMIN]
    allow:
      finetune: {groups: ["@ml-team", "0f6d2a61-3c1e-4b8e-9a57-2f1d8c3b7e40"], channels: [C0ML]}
      deploy: {users: [U0DEPLOYER]}
      import: {groups: [S0PLATFORM]}
      cancel_others: {groups: ["@ml-oncall"]}
    data_assets: [reviews, "support-tickets:3"]   # Azure ML data assets chat users may name

`costs` (its own section, `CostPolicy`) holds monthly budgets in USD per user, channel and user group,
what happens to a request over budget (`refuse`, or `approve`: it waits for an approver), and endpoints'
time to live (hours by platform kind; who may deploy with no end):

    costs:
      budgets: {users: {U0ALICE: 200}, channels: {C0ML: 1000}, groups: {"@ml-team": 500}}
      over_budget: approve
      endpoint_ttl_hours: {local: 8, paid: 24}
      never_expire: {groups: ["@ml-oncall"]}

`data_assets` lists the Azure ML data assets (`name`, or `name:version`) a form may read; any other
asset of the workspace is refused, so nobody reads a dataset by guessing its name.

`limits` is fair use: what one user, and one channel, may hold at once, so nobody starves the rest
(handlers/limits.py checks them; a refusal says the limit and how to raise it). A limit left out
is unlimited, but `tries_per_minute`, 20 unless set; `raised` gives a user or channel id its own value of any limit:

    limits:
      user: {concurrent_jobs: 2, queued_jobs: 5, endpoints: 2, upload_mb_per_day: 500,
             storage_mb: 2000, import_gb: 5, tries_per_minute: 20}
      channel: {concurrent_jobs: 4, queued_jobs: 10, endpoints: 4, upload_mb_per_day: 2000}
      raised: {U0RESEARCH: {concurrent_jobs: 6}, C0ML: {queued_jobs: 40}}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from handlers.actions import Action
from handlers.errors import UserError


DOING = {
    Action.SEARCH: "search the catalog", Action.TRY: "try models", Action.EVALUATE: "evaluate models",
    Action.FINETUNE: "fine-tune models", Action.DEPLOY: "deploy models", Action.IMPORT: "import models",
    Action.CANCEL_OTHERS: "cancel other people's jobs", Action.APPROVE: "approve costly jobs",
}


class GroupsUnknown(Exception):
    """A user's groups could not be read (the directory is down, or refuses the bot); the text says
    why, for the refusal. Group rules then match nobody: access fails closed."""


class Actor(BaseModel):
    """Who is asking, and from where: a Slack user (or `cli:<name>`), a channel, their user groups;
    `groups_unknown` says why the groups could not be read, when they could not."""

    user: str
    channel: str | None = None
    groups: list[str] = []
    groups_unknown: str | None = None


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key must not silently close or open a rule

    everyone: bool = False
    users: list[str] = []
    groups: list[str] = []
    channels: list[str] = []

    def matches(self, actor: Actor) -> bool:
        return (self.everyone or actor.user in self.users or bool(set(actor.groups) & set(self.groups))
                or (actor.channel is not None and actor.channel in self.channels))

    def describe(self) -> str:
        """Who the rule lets in, in words, for a refusal that names the rule."""
        if self.everyone:
            return "everyone"
        named = [f"{label} {', '.join(ids)}" for label, ids in
                 (("users", self.users), ("members of the groups", self.groups), ("conversations", self.channels)) if ids]
        return "; ".join(named) or "nobody but the admins"


OPEN = Rule(everyone=True)
CLOSED = Rule()


class AccessDenied(UserError):
    pass


class Limits(BaseModel):
    """One user's or one channel's share; None is unlimited."""

    model_config = ConfigDict(extra="forbid")

    concurrent_jobs: int | None = Field(None, ge=0, description="jobs running at once")
    queued_jobs: int | None = Field(None, ge=0, description="jobs waiting to run (queued or awaiting approval)")
    endpoints: int | None = Field(None, ge=0, description="endpoints up at once")
    upload_mb_per_day: float | None = Field(None, ge=0, description="MB of datasets uploaded per UTC day")
    storage_mb: float | None = Field(None, ge=0, description="MB of uploaded datasets kept at once")
    import_gb: float | None = Field(None, ge=0, description="GB of one model imported from the Hugging Face hub")
    tries_per_minute: int | None = Field(20, ge=0, description="tries per minute (users only; null: unlimited)")


class FairUse(BaseModel):
    """The policy's `limits` section: per user, per channel, and raised for named ids."""

    model_config = ConfigDict(extra="forbid")

    user: Limits = Limits()
    channel: Limits = Limits()
    raised: dict[str, Limits] = {}

    def of(self, scope: Literal["user", "channel"], who: str) -> Limits:
        """`scope`'s defaults with `who`'s raised values over them."""
        own = self.raised.get(who)
        base = getattr(self, scope)
        return base.model_copy(update=own.model_dump(exclude_unset=True)) if own else base


class Budgets(BaseModel):
    """Monthly budgets in USD; a request is checked against every one that names its requester, its
    channel or one of the requester's groups."""

    model_config = ConfigDict(extra="forbid")

    users: dict[str, float] = {}
    channels: dict[str, float] = {}
    groups: dict[str, float] = {}

    def limits(self, actor: Actor) -> list[tuple[str, str, float]]:
        """(scope, id, budget) of each budget `actor`'s request counts against."""
        found = [("user", actor.user, self.users[actor.user])] if actor.user in self.users else []
        if actor.channel is not None and actor.channel in self.channels:
            found.append(("channel", actor.channel, self.channels[actor.channel]))
        found += [("group", g, self.groups[g]) for g in actor.groups if g in self.groups]
        return found


class CostPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budgets: Budgets = Budgets()
    over_budget: Literal["refuse", "approve"] = "refuse"
    endpoint_ttl_hours: dict[Literal["local", "paid"], float] = {"local": 8.0, "paid": 24.0}
    never_expire: Rule = Rule()

    @property
    def mentions_groups(self) -> bool:
        return bool(self.budgets.groups or self.never_expire.groups)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    admins: list[str] = []
    allow: dict[Action, Rule] = {}
    data_assets: list[str] = []
    limits: FairUse = FairUse()
    costs: CostPolicy = CostPolicy()

    def allows_data_asset(self, name: str, version: str | None) -> bool:
        return name in self.data_assets or (version is not None and f"{name}:{version}" in self.data_assets)

    def rule(self, action: Action) -> Rule:
        default = OPEN if action in (Action.SEARCH, Action.TRY, Action.EVALUATE) else CLOSED
        return self.allow.get(action, default)

    @property
    def mentions_groups(self) -> bool:
        return any(r.groups for r in self.allow.values()) or self.costs.mentions_groups

    def allows(self, actor: Actor, action: Action) -> bool:
        return actor.user in self.admins or self.rule(action).matches(actor)

    @property
    def groups(self) -> set[str]:
        """Every group any rule or budget names."""
        return {g for r in self.allow.values() for g in r.groups} | set(self.costs.budgets.groups) | set(
            self.costs.never_expire.groups)

    def require(self, actor: Actor, action: Action, *, name_rule: bool = False) -> None:
        """Raise AccessDenied, naming who can grant access, unless `actor` may do `action`.
        `name_rule` also says who the rule lets in (Teams, whose users cannot look a policy up);
        a refusal because the actor's groups could not be read says so, and why."""
        if self.allows(actor, action):
            return
        rule = self.rule(action)
        reason = f"you are not allowed to {DOING[action]} here"
        if name_rule:
            reason += f": the access policy allows it to {rule.describe()}"
        if actor.groups_unknown and rule.groups:
            raise AccessDenied(f"{reason}, and your groups could not be checked ({actor.groups_unknown})",
                               hint="Try again in a minute; if it keeps failing, tell whoever runs fmbot")
        raise AccessDenied(reason, hint=self.who_grants())

    def who_grants(self) -> str:
        if not self.admins:
            return "Ask whoever runs fmbot to allow it in the access policy (FMBOT_POLICY)"
        return f"Ask an fmbot admin to allow it: {', '.join(mention(a) for a in self.admins)}"


def mention(who: str) -> str:
    """A Slack user or group id as a mention; anything else (a CLI user) as it is."""
    if who[:1] in ("U", "W") and who[1:].isalnum():
        return f"<@{who}>"
    if who[:1] == "S" and who[1:].isalnum():
        return f"<!subteam^{who}>"
    return who


def load_policy(path: Path | None, admins: Iterable[str] = ()) -> Policy:
    """The configured policy; a broken file stops start-up with the reason, never opens access."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
            policy = Policy.model_validate(data)
        except FileNotFoundError:
            raise UserError(f"FMBOT_POLICY names {path}, which does not exist",
                            hint="Fix the path, or unset FMBOT_POLICY for the default policy") from None
        except (yaml.YAMLError, ValidationError) as exc:
            raise UserError(f"{path} is not a valid access policy: {str(exc).splitlines()[0]}",
                            hint="See handlers/policy.py for the format") from None
    else:
        policy = Policy()
    extra = [a.strip() for a in admins if a.strip()]
    return policy.model_copy(update={"admins": [*policy.admins, *extra]})


_current: Policy = Policy()
_groups_of: Callable[[str], list[str]] = lambda user: []


def install(policy: Policy, groups_of: Callable[[str], list[str]] | None = None) -> None:
    """Set the process's policy and how to find a user's groups (Slack's usergroups, or Teams' Entra
    groups from Microsoft Graph; cached, and raising GroupsUnknown when they cannot be read)."""
    global _current, _groups_of
    _current = policy
    _groups_of = groups_of or (lambda user: [])


def current() -> Policy:
    return _current


def actor(user: str, channel: str | None = None) -> Actor:
    """The Actor for `user`, with their groups looked up only when the policy names any."""
    if not _current.mentions_groups:
        return Actor(user=user, channel=channel)
    try:
        return Actor(user=user, channel=channel, groups=_groups_of(user))
    except GroupsUnknown as exc:
        return Actor(user=user, channel=channel, groups_unknown=str(exc))
