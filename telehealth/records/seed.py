"""The demo medical alliances, seeded once, idempotently, by `telehealth serve --demo`: a city medical group
pilot (its lead reserves one third of outpatient slots; its member county hospital what is set for it) and a
county medical community (its lead reserves 20 %)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from telehealth.accounts import hash_password_async
from telehealth.domain import OrgLevel, Role, Title
from telehealth.records.quota import DEFAULT_POLICY, SharePolicy
from telehealth.records.store import Store

DEMO_PASSWORD = "demo-pass-2026"
ALLIANCE_NAME = "Qingshan City Medical Group"
COUNTY_ALLIANCE_NAME = "Songxi County Medical Community"


@dataclass(frozen=True)
class DemoAlliance:
    key: str
    name: str
    name_zh: str
    kind: str
    region: str
    member_share_pct: int | None = None


@dataclass(frozen=True)
class DemoOrg:
    key: str
    name: str
    name_zh: str
    level: OrgLevel
    leads: bool = False
    pilot: bool = False
    region: str = ""
    alliance: str = "qingshan"


@dataclass(frozen=True)
class DemoUser:
    username: str
    display_name: str
    role: Role
    org: str | None
    title: Title | None = None
    specialties: tuple[str, ...] = ()
    system_admin: bool = False


ALLIANCES: tuple[DemoAlliance, ...] = (
    # The group's own rule: its member hospitals (the county hospital) reserve 10 % of their slots.
    DemoAlliance("qingshan", ALLIANCE_NAME, "青山市医疗集团", "city_group", "Qingshan", member_share_pct=10),
    DemoAlliance("songxi", COUNTY_ALLIANCE_NAME, "松溪县医共体", "county_community", "Songxi County"),
)

ORGS: tuple[DemoOrg, ...] = (
    DemoOrg("city", "Qingshan First People's Hospital", "青山市第一人民医院", OrgLevel.city_hospital,
            leads=True, pilot=True, region="Qingshan"),
    DemoOrg("county", "Heping County People's Hospital", "和平县人民医院", OrgLevel.county_hospital,
            region="Heping County"),
    DemoOrg("t1", "Chengguan Town Health Centre", "城关镇卫生院", OrgLevel.township_centre, region="Heping County"),
    DemoOrg("t2", "Shiqiao Town Health Centre", "石桥镇卫生院", OrgLevel.township_centre, region="Heping County"),
    DemoOrg("t3", "Liuhe Township Health Centre", "柳河乡卫生院", OrgLevel.township_centre, region="Heping County"),
    DemoOrg("v1", "Dongcun Village Clinic", "东村卫生室", OrgLevel.village_clinic, region="Chengguan"),
    DemoOrg("v2", "Xicun Village Clinic", "西村卫生室", OrgLevel.village_clinic, region="Chengguan"),
    DemoOrg("v3", "Nanshan Village Clinic", "南山村卫生室", OrgLevel.village_clinic, region="Shiqiao"),
    DemoOrg("v4", "Beihe Village Clinic", "北河村卫生室", OrgLevel.village_clinic, region="Shiqiao"),
    DemoOrg("v5", "Taoyuan Village Clinic", "桃园村卫生室", OrgLevel.village_clinic, region="Liuhe"),
    DemoOrg("v6", "Lijia Village Clinic", "李家村卫生室", OrgLevel.village_clinic, region="Liuhe"),
    # A county medical community: its lead is no pilot, so it reserves 20 %.
    DemoOrg("songxi", "Songxi County People's Hospital", "松溪县人民医院", OrgLevel.county_hospital,
            leads=True, region="Songxi County", alliance="songxi"),
    DemoOrg("s1", "Zhengdun Town Health Centre", "郑墩镇卫生院", OrgLevel.township_centre, region="Songxi County",
            alliance="songxi"),
    DemoOrg("sv1", "Xiacun Village Clinic", "下村卫生室", OrgLevel.village_clinic, region="Zhengdun",
            alliance="songxi"),
)

USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "System administrator", Role.admin, None, system_admin=True),
    DemoUser("alliance.admin", "Zhou Min (medical affairs)", Role.admin, "city"),
    DemoUser("cardio.chief", "Prof. Chen Guoqiang", Role.specialist, "city", Title.chief, ("cardiology",)),
    DemoUser("cardio.attending", "Dr. Liu Yang", Role.specialist, "county", Title.attending, ("cardiology",)),
    DemoUser("paeds.assoc", "Dr. Huang Li", Role.specialist, "city", Title.associate_chief, ("paediatrics",)),
    DemoUser("paeds.attending", "Dr. Zhao Jing", Role.specialist, "county", Title.attending, ("paediatrics",)),
    DemoUser("neuro.chief", "Prof. Sun Wei", Role.specialist, "city", Title.chief, ("neurology",)),
    DemoUser("neuro.assoc", "Dr. Ma Hui", Role.specialist, "county", Title.associate_chief, ("neurology",)),
    DemoUser("med.assoc", "Dr. Wu Fang", Role.specialist, "city", Title.associate_chief,
             ("internal_medicine", "cardiology")),
    DemoUser("med.attending", "Dr. Zheng Tao", Role.specialist, "county", Title.attending, ("internal_medicine",)),
    DemoUser("township1", "Dr. Wang Jun", Role.clinic_doctor, "t1", Title.attending),
    DemoUser("township2", "Dr. Li Na", Role.clinic_doctor, "t2", Title.attending),
    DemoUser("township3", "Dr. Zhang Qiang", Role.clinic_doctor, "t3", Title.resident),
    DemoUser("village1", "Dr. Wang Dafu", Role.clinic_doctor, "v1"),
    DemoUser("village2", "Dr. Li Guirong", Role.clinic_doctor, "v2"),
    DemoUser("village3", "Dr. Zhang Shan", Role.clinic_doctor, "v3"),
    DemoUser("village4", "Dr. Liu Chunhua", Role.clinic_doctor, "v4"),
    DemoUser("village5", "Dr. Chen Mei", Role.clinic_doctor, "v5"),
    DemoUser("village6", "Dr. Yang Shu", Role.clinic_doctor, "v6"),
    DemoUser("songxi.admin", "Lin Hua (medical affairs)", Role.admin, "songxi"),
    DemoUser("songxi.internist", "Dr. Xu Ming", Role.specialist, "songxi", Title.attending,
             ("internal_medicine", "cardiology")),
    DemoUser("songxi.township", "Dr. He Ping", Role.clinic_doctor, "s1", Title.attending),
    DemoUser("songxi.village", "Dr. Ye Gen", Role.clinic_doctor, "sv1"),
)


async def seed_demo(store: Store, now: dt.datetime, password: str = DEMO_PASSWORD) -> bool:
    """Create each demo alliance that does not exist yet, with its institutions and people. True if anything
    was created."""
    created_alliances: dict[str, int] = {}
    for demo in ALLIANCES:
        if await store.get_alliance_by_name(demo.name) is None:
            alliance = await store.insert_alliance(demo.name, demo.kind, name_zh=demo.name_zh, region=demo.region,
                                                   member_share_pct=demo.member_share_pct)
            created_alliances[demo.key] = alliance.id
    if not created_alliances:
        return False
    org_ids: dict[str, int] = {}
    org_alliance = {org.key: org.alliance for org in ORGS}
    for org in ORGS:
        if org.alliance not in created_alliances:
            continue
        created = await store.insert_organisation(
            org.name, org.level, alliance_id=created_alliances[org.alliance], name_zh=org.name_zh,
            leads_alliance=org.leads, city_group_pilot=org.pilot, region=org.region)
        org_ids[org.key] = created.id
    password_hash = await hash_password_async(password)
    for user in USERS:
        # The system administrator comes with the first alliance; everyone else with their institution's.
        if org_alliance.get(user.org or "", ALLIANCES[0].key) not in created_alliances:
            continue
        await store.insert_user(
            user.username, password_hash, user.display_name, user.role,
            organisation_id=org_ids[user.org] if user.org else None, now=now, title=user.title,
            specialties=user.specialties, is_system_admin=user.system_admin)
    return True


DEMO_DEPARTMENTS = ("cardiology", "neurology", "paediatrics", "internal_medicine")
DEMO_SLOT_DAYS = 7
# Morning outpatient sessions: 08:00 to 11:30, every 30 minutes (eight slots a department a day).
DEMO_SLOT_TIMES = tuple(dt.time(8 + i // 2, 30 * (i % 2)) for i in range(8))


async def seed_demo_slots(store: Store, now: dt.datetime, tz: ZoneInfo, days: int = DEMO_SLOT_DAYS,
                          policy: SharePolicy = DEFAULT_POLICY) -> int:
    """Publish the demo hospitals' outpatient slots for the coming days (idempotent: days already published are
    left as they are). Returns how many slots were added."""
    added = 0
    today = now.astimezone(tz).date()
    for org in ORGS:
        if not org.level.is_hospital:
            continue
        hospital = await store.get_organisation_by_name(org.name)
        if hospital is None:
            continue
        for department in DEMO_DEPARTMENTS:
            starts = [dt.datetime.combine(today + dt.timedelta(days=d), t, tz).astimezone(dt.UTC)
                      for d in range(1, days + 1) for t in DEMO_SLOT_TIMES]
            created, _ = await store.publish_slots(hospital.id, department, starts, duration_min=30,
                                                   location=f"Outpatient building, {department.replace('_', ' ')}",
                                                   tz=tz, policy=policy)
            added += created
    return added


def demo_logins() -> list[tuple[str, str]]:
    """(username, what the account is) for the banner `serve --demo` prints."""
    names = {org.key: org.name for org in ORGS}
    rows = []
    for user in USERS:
        where = names[user.org] if user.org else "all alliances"
        what = user.role.value.replace("_", " ")
        if user.specialties:
            what += f", {'/'.join(user.specialties)}"
        if user.title:
            what += f", {user.title.value.replace('_', ' ')}"
        rows.append((user.username, f"{what} — {where}"))
    return rows
