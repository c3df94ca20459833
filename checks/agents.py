"""The agent's own details in place of the customer's (SPEC 3; art. 11 of the operative rules).

- PHONE_IS_AGENT: a customer's phone is the phone of an agent on the roster who is not that
  customer.
- BANK_IS_AGENT: the applicant's premium account (`bank_account`, digits) is an agent's account
  (`agent_bank_account`, digits) and the applicant is not that agent.
- ADDRESS_IS_AGENT: the applicant's address is an agent's address (`agent_address`), compared as
  checks.addresses compares two addresses, and the applicant is not that agent.

The customer is the agent when their identity numbers agree (15-digit numbers upgraded), or,
where the roster has no identity number for the agent, when the names agree. Without a roster,
or a roster without the column a rule compares, the rule is not applicable and says so in the
manifest.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from checks import addresses, findings, phones
from checks.arrays import isin_text
from checks.findings import NotApplicable, RuleContext
from checks.identity import analysis
from checks.masking import mask_account, mask_name, mask_phone
from checks.ric_vector import analyse


def _once(ctx: RuleContext, name: str, make: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """`make(roster)`, made once a night and kept on the rule context (RuleContext.night)."""
    key = ("roster", name)
    if key not in ctx.night:
        if ctx.agents is None:
            raise RuntimeError(f"the roster's {name} without a roster (bug: the rule is not applicable)")
        ctx.night[key] = make(ctx.agents)
    return ctx.night[key]


def _roster(ctx: RuleContext) -> pd.DataFrame:
    def make(agents: pd.DataFrame) -> pd.DataFrame:
        numbers = phones.normalise(agents["agent_phone"])
        return _people(agents, ctx).assign(e164=numbers["e164"].where(numbers["valid"])).dropna(
            subset=["e164"]).drop_duplicates(["e164", "agent_code"])

    return _once(ctx, "phones", make)


def _not_the_agent(frame: pd.DataFrame, ctx: RuleContext, role: str, pairs: pd.DataFrame,
                   index_name: str) -> pd.DataFrame:
    """The (customer row, agent) pairs where the customer (`role` of the row) is not the agent:
    identity numbers differ, or, where the roster has no number for the agent, names differ."""
    ids = analysis(frame, ctx, role)["id18"]
    customer_id = ids.reindex(pairs[index_name]).to_numpy()
    customer_name = frame[f"{role}_name"].str.replace(r"\s", "", regex=True).reindex(pairs[index_name]).to_numpy()
    agent_has_id = pairs["agent_id18"].notna().to_numpy()
    same = ((customer_id == pairs["agent_id18"].to_numpy()) & agent_has_id) | (
        ~agent_has_id & (customer_name == pairs["agent_name"].to_numpy()))
    return pairs[~same]


def _listed(pairs: pd.DataFrame, index_name: str) -> pd.Series:
    """Per customer row, the agents it matched: `业务员<code> <masked name>`, joined."""
    return ("业务员" + pairs["agent_code"].fillna("") + " " + mask_name(pairs["agent_name"]).fillna("")).groupby(
        pairs[index_name]).agg("、".join)


def _people(agents: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    """The roster's agents as the rules compare them to customers: code, name, identity number."""
    return pd.DataFrame({"agent_code": agents["agent_code"],
                         "agent_name": agents["agent_name"].str.replace(r"\s", "", regex=True),
                         "agent_id18": analyse(agents["agent_id_no"], ctx.business_date)["id18"].fillna(
                             agents["agent_id_no"])})


def phone_is_agent(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    if ctx.agents is None:
        raise NotApplicable("no agent roster given (--agents)")
    roster = _roster(ctx)
    parts = []
    for role in ("applicant", "insured"):
        column = f"{role}_phone"
        phone = frame[f"{column}_e164"].where(frame[f"{column}_valid"])
        hits = phone[isin_text(phone, roster["e164"])]
        if hits.empty:
            continue
        pairs = hits.rename("e164").reset_index().merge(roster, on="e164")
        index_name = pairs.columns[0]
        pairs = _not_the_agent(frame, ctx, role, pairs, index_name)
        if pairs.empty:
            continue
        listed = _listed(pairs, index_name)
        mask = pd.Series(frame.index.isin(listed.index), index=frame.index)
        evidence = (mask_phone(frame.loc[mask, f"{column}_national"]) + " 属于 " + listed).reindex(frame.index)
        parts.append(findings.make(mask, role, column, f"{ctx.labels[column]}为业务员的电话", evidence))
    return findings.concat(parts)


def _accounts(ctx: RuleContext) -> pd.DataFrame:
    def make(agents: pd.DataFrame) -> pd.DataFrame:
        digits = agents["agent_bank_account"].str.replace(r"[\s\-]", "", regex=True)
        usable = digits.str.fullmatch(r"\d{8,30}", na=False)
        return _people(agents, ctx).assign(account=digits)[usable.to_numpy()].drop_duplicates(["account", "agent_code"])

    return _once(ctx, "accounts", make)


def bank_is_agent(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    """The applicant's premium account is an agent's own (the roster's `agent_bank_account`):
    premiums come only from the applicant's account, and an agent must not open and control an
    account in the customer's name (art. 11). Compared as digits (spaces and hyphens removed),
    8-30 of them, as SPEC 2.5 reads an account."""
    if ctx.agents is None:
        raise NotApplicable("no agent roster given (--agents)")
    if "agent_bank_account" not in ctx.agents or ctx.agents["agent_bank_account"].isna().all():
        raise NotApplicable("the agent roster has no 业务员银行账号 (agent_bank_account)")
    roster = _accounts(ctx)
    account = frame["bank_account_digits"].where(frame["bank_account_digits"].str.fullmatch(r"\d{8,30}", na=False))
    hits = account[isin_text(account, roster["account"])]
    if hits.empty:
        return findings.concat([])
    pairs = hits.rename("account").reset_index().merge(roster, on="account")
    index_name = pairs.columns[0]
    pairs = _not_the_agent(frame, ctx, "applicant", pairs, index_name)
    if pairs.empty:
        return findings.concat([])
    listed = _listed(pairs, index_name)
    mask = pd.Series(frame.index.isin(listed.index), index=frame.index)
    evidence = (mask_account(frame.loc[mask, "bank_account_digits"]) + " 属于 " + listed).reindex(frame.index)
    return findings.make(mask, "applicant", "bank_account", f"{ctx.labels['bank_account']}为业务员的银行账号", evidence)


def _addresses(ctx: RuleContext) -> pd.DataFrame:
    def make(agents: pd.DataFrame) -> pd.DataFrame:
        canon = addresses.canonical(agents["agent_address"])
        parts = pd.DataFrame(addresses.split(canon.fillna("")), columns=["province", "prefecture", "county", "detail"],
                             index=agents.index)
        usable = (parts["detail"].str.len() >= addresses.MIN_DETAIL).to_numpy()
        return pd.concat([_people(agents, ctx), parts], axis=1)[usable].drop_duplicates(
            ["detail", "province", "prefecture", "county", "agent_code"])

    return _once(ctx, "addresses", make)


def address_is_agent(frame: pd.DataFrame, ctx: RuleContext) -> pd.DataFrame:
    """The applicant's address is an agent's (the roster's `agent_address`): agents must not put
    their own address in place of the customer's (art. 11). A shared address is not a finding by
    itself (families share them); an agent's is. Candidates are the addresses that end with an
    agent's detail (a column-wise test per length); what comes before that detail must then be
    region names only (checks.addresses), naming no level other than the agent's address names."""
    if ctx.agents is None:
        raise NotApplicable("no agent roster given (--agents)")
    if "agent_address" not in ctx.agents or ctx.agents["agent_address"].isna().all():
        raise NotApplicable("the agent roster has no 业务员地址 (agent_address)")
    roster = _addresses(ctx)
    canon = addresses.canonical(frame["applicant_address"])
    found = []
    lengths = canon.str.len().fillna(0).to_numpy()
    for length, details in roster.groupby(roster["detail"].str.len())["detail"]:
        ends = canon.str[-int(length):]
        hit = ends.isin(set(details)).fillna(False).to_numpy() & (lengths >= length)
        if hit.any():
            found.append(pd.DataFrame({"detail": ends[hit], "before": canon[hit].str[:-int(length)]}))
    if not found:
        return findings.concat([])
    mine = pd.concat(found)
    # what comes before the agent's detail must be region names only: split once per distinct text
    # (a few thousand regions, however many rows)
    codes, before = pd.factorize(mine["before"])
    regions = np.array(addresses.split(before), dtype=object).reshape(-1, 4)[codes]
    parts = pd.DataFrame(regions[:, :3], columns=["province", "prefecture", "county"], index=mine.index).assign(
        detail=mine["detail"])[regions[:, 3] == ""]
    pairs = parts.reset_index().merge(roster, on="detail", suffixes=("", "_agent"))
    index_name = pairs.columns[0]
    same = addresses.same_regions(pairs[["province", "prefecture", "county"]].to_numpy(),
                                  pairs[["province_agent", "prefecture_agent", "county_agent"]].to_numpy())
    pairs = _not_the_agent(frame, ctx, "applicant", pairs[same].drop_duplicates([index_name, "agent_code"]),
                           index_name)
    if pairs.empty:
        return findings.concat([])
    listed = _listed(pairs, index_name)
    mask = pd.Series(frame.index.isin(listed.index), index=frame.index)
    region = (pairs["province"] + pairs["prefecture"].where(pairs["prefecture"] != pairs["province"], "")
              + pairs["county"]).groupby(pairs[index_name]).first().reindex(frame.index)
    evidence = ("地址（" + region.fillna("") + "…）与 " + listed + " 的地址相同").reindex(frame.index)
    return findings.make(mask, "applicant", "applicant_address", f"{ctx.labels['applicant_address']}为业务员的地址",
                         evidence)
