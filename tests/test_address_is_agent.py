"""ADDRESS_IS_AGENT (issue 31, art. 11): the applicant's address is an agent's, written the same
way or another (province and city written, shortened or left out, full-width digits, 號, 幢,
Chinese numerals, spaces and punctuation), unless the applicant is that agent."""

from __future__ import annotations

import pandas as pd
import pytest

from checks.addresses import canonical, same_address, split
from tests.helpers import contact_index, id_no, night_with_roster, postgres_url, read_outputs, row

AGENT_ID = id_no("44010619850101001")
AGENT_ADDRESS = "广东省广州市天河区体育西路103号维多利广场B座2幢1502室"


@pytest.fixture
def night(invoke, tmp_path):
    """One night of `rows` with the roster `agents`, on a real SQLite file (PostgreSQL: below)."""
    return lambda _invoke, _tmp, rows, agents: night_with_roster(invoke, tmp_path, f"sqlite:///{tmp_path / 'c.db'}",
                                                                 rows, agents, "ADDRESS_IS_AGENT")


def agent(**over):
    base = {"agent_code": "A0009", "agent_name": "王五", "agent_phone": "13600001111", "agent_id_no": AGENT_ID,
            "branch": "广东分公司", "agent_address": AGENT_ADDRESS}
    return base | over


@pytest.mark.parametrize("written", [
    AGENT_ADDRESS,
    "广州市天河区体育西路103号维多利广场B座2幢1502室",  # the province left out
    "广东广州天河区体育西路１０３號维多利广场ｂ座二栋1502室",  # shortened, full-width, 號, lower case, 二栋
    "天河区 体育西路103号，维多利广场B座 2栋 1502室",  # only the county, spaces and punctuation
    "体育西路103号维多利广场B座2栋1502室",  # no region at all
])
def test_the_agents_address_written_another_way_is_found(invoke, tmp_path, written, night):
    items, manifest = night(invoke, tmp_path, [row(applicant_address=written)], [agent()])
    assert items["policy_no"].tolist() == ["P0001"]
    assert items[["role", "field", "severity", "category"]].values.tolist() == [
        ["applicant", "applicant_address", "error", "可疑线索"]]
    evidence = items["evidence"].item()
    assert "业务员A0009 王*" in evidence and "1502" not in evidence and "体育西路" not in evidence
    assert manifest["rules"]["ADDRESS_IS_AGENT"]["status"] == "ok"


@pytest.mark.parametrize("written", [
    "浙江省杭州市天河区体育西路103号维多利广场B座2幢1502室",  # another province and city
    "广州市越秀区体育西路103号维多利广场B座2幢1502室",  # another county
    "广州市天河区体育西路103号维多利广场B座2幢1503室",  # another room
    "广州市天河区天河路103号维多利广场B座2幢1502室",  # another road
    "广州市天河区东风村体育西路103号维多利广场B座2幢1502室",  # more than regions before the agent's detail
])
def test_another_address_is_not_the_agents(invoke, tmp_path, written, night):
    items, _ = night(invoke, tmp_path, [row(applicant_address=written)], [agent()])
    assert items.empty


def test_the_agent_at_home_and_a_roster_without_addresses(invoke, tmp_path, night):
    own = row(applicant_address=AGENT_ADDRESS, applicant_name="王五", applicant_id_no=AGENT_ID,
              applicant_birth_date="1985-01-01", bank_account_holder="王五")
    items, _ = night(invoke, tmp_path, [own], [agent()])
    assert items.empty
    plain = {k: v for k, v in agent().items() if k != "agent_address"}
    items, manifest = night(invoke, tmp_path, [row(applicant_address=AGENT_ADDRESS)], [plain])
    assert items.empty and manifest["rules"]["ADDRESS_IS_AGENT"]["status"] == "not_applicable"
    assert "业务员地址" in manifest["rules"]["ADDRESS_IS_AGENT"]["reason"]


def test_a_short_detail_is_never_compared():
    a, b = split(canonical(pd.Series(["广州市天河区1号", "杭州市1号"])))
    c, d = split(canonical(pd.Series(["广州市天河区1号", "天河区1号"])))
    assert not same_address(a, b) and not same_address(c, d)  # "1号": too many addresses end so


def test_a_county_of_the_same_name_elsewhere_is_another_place():
    beijing, changchun = split(canonical(pd.Series(["北京市朝阳区人民大街1号", "吉林省长春市朝阳区人民大街1号"])))
    assert beijing[:3] == ("北京市", "北京市", "朝阳区") and changchun[:3] == ("吉林省", "长春市", "朝阳区")
    assert not same_address(beijing, changchun)


def test_gb2260_placeholders_are_no_place():
    """省直辖县级行政单位 and 市辖区 are GB/T 2260's words for "no prefecture": an address that
    writes them, or leaves them out, is the same address."""
    written, plain, district = split(canonical(pd.Series([
        "江苏省省直辖县级行政单位张家港市新华路237号", "省直辖县级行政单位 张家港市新华路237号", "北京市市辖区朝阳区建国路1号"])))
    assert written[2:] == plain[2:] == ("张家港市", "新华路237号") and same_address(written, plain)
    assert district == ("北京市", "北京市", "朝阳区", "建国路1号")


def test_a_prefecture_under_its_retired_province_is_the_same_place():
    """重庆市 was a prefecture of 四川省 until 1997 (GB/T 2260 keeps both): the same prefecture
    named, the provinces are not compared; another prefecture still differs."""
    old, new, other = split(canonical(pd.Series(["四川省重庆市江津市建设路196号", "重庆市江津市建设路１９６號",
                                                 "四川省成都市江津市建设路196号"])))
    assert new[1:] == ("重庆市", "江津市", "建设路196号") and same_address(old, new)
    assert not same_address(old, other)


def test_on_postgresql_too(invoke, tmp_path):
    written = "广州天河区体育西路１０３號维多利广场B座2栋1502室"
    items, manifest = night_with_roster(invoke, tmp_path, postgres_url(), [row(applicant_address=written)], [agent()],
                                        "ADDRESS_IS_AGENT")
    assert items["policy_no"].tolist() == ["P0001"] and manifest["rules"]["ADDRESS_IS_AGENT"]["status"] == "ok"


def _plain(addresses: pd.Series) -> pd.Series:
    """The test's own reading of the sample's addresses, independent of checks.addresses: NFKC,
    no spaces, 號 as 号, the province (whatever comes before its 省/自治区) left out."""
    return (addresses.astype("str").str.normalize("NFKC").str.replace(r"\s", "", regex=True).str.replace("號", "号")
            .str.replace(r"^.+?(省|自治区)", "", regex=True))


def test_the_sample_s_agents_details_are_found_and_nothing_else(invoke, tmp_path):
    """Recall and precision on `custdq sample`'s night (3,000 policies, 30% with a defect): the
    policies whose premium account is an agent's, or whose applicant's address is an agent's
    (as the sample writes it: province left out, full-width digits, 號, a space) are found,
    computed here without the rule's code; and a clean sample with its roster raises nothing."""
    extract, roster, out = tmp_path / "night.csv", tmp_path / "agents.csv", tmp_path / "out"
    assert invoke("sample", "--rows", "3000", "--seed", "31", "--defect-rate", "0.3", "--out", str(extract),
                  "--agents-out", str(roster)).exit_code == 0
    done = invoke("run", str(extract), "--agents", str(roster), "--business-date", "2026-11-20", "--out", str(out),
                  "--quiet", "--db", f"sqlite:///{tmp_path / 'c.db'}")
    assert done.exit_code == 0, done.output
    items = read_outputs(out)[0]
    rows = pd.read_csv(extract, dtype=str).drop_duplicates("保单号").dropna(subset=["保单号"])
    agents = pd.read_csv(roster, dtype=str)
    not_agent = ~rows["投保人证件号码"].isin(agents["业务员证件号码"])
    account = rows["缴费账号"].str.replace(r"\D", "", regex=True)
    bank = set(rows[account.isin(agents["业务员银行账号"]) & not_agent]["保单号"])
    home = set(rows[_plain(rows["投保人联系地址"]).isin(set(_plain(agents["业务员地址"]))) & not_agent]["保单号"])
    found = {rule: set(items[items["rule_code"] == rule]["policy_no"]) for rule in ("BANK_IS_AGENT", "ADDRESS_IS_AGENT")}
    assert len(bank) >= 10 and len(home) >= 10  # the sample planted some of each
    with contact_index(f"sqlite:///{tmp_path / 'c.db'}") as book:  # the policies checked (in scope, not quarantined)
        checked = {p for (p,) in book.db.run("SELECT policy_no FROM contacts UNION SELECT policy_no FROM seen")}
    assert len(checked) > 2500
    assert found["BANK_IS_AGENT"] == bank & checked  # nothing else (precision), and every one checked (recall)
    assert found["ADDRESS_IS_AGENT"] == home & checked

    clean = tmp_path / "clean.csv"
    assert invoke("sample", "--rows", "2000", "--seed", "11", "--defect-rate", "0", "--out", str(clean),
                  "--agents-out", str(roster)).exit_code == 0
    done = invoke("run", str(clean), "--agents", str(roster), "--business-date", "2026-11-20", "--out",
                  str(tmp_path / "clean-out"), "--quiet", "--db", f"sqlite:///{tmp_path / 'd.db'}")
    assert done.exit_code == 0 and read_outputs(tmp_path / "clean-out")[0].empty
