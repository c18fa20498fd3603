"""Deterministic portal data: the same seed and anchor date always give the same portal.

Data looks like a real Russian-speaking company on Bitrix24: a department tree, users with Russian
and Latin names (some without e-mail or phone, some inactive, some extranet without departments),
tasks spread over users with realistic statuses and dates over the past year, and calendar events
in user, company and group calendars around "today". Generation is compact (slots rows, one
``random.Random``), so 10k users / 100k tasks / 20k events take about a second.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta, timezone

from .store import CalendarEvent, Department, Group, PortalState, Task, User

DAY = 86400.0

RU_MALE = [
    "Иван",
    "Алексей",
    "Дмитрий",
    "Сергей",
    "Андрей",
    "Михаил",
    "Николай",
    "Павел",
    "Артём",
    "Владимир",
    "Егор",
    "Константин",
    "Максим",
    "Роман",
    "Юрий",
    "Олег",
    "Григорий",
    "Фёдор",
]
RU_FEMALE = [
    "Ольга",
    "Анна",
    "Елена",
    "Мария",
    "Наталья",
    "Татьяна",
    "Ирина",
    "Светлана",
    "Юлия",
    "Екатерина",
    "Дарья",
    "Ксения",
    "Алёна",
    "Вера",
    "Людмила",
    "Полина",
    "Софья",
]
RU_LAST = [
    "Иванов",
    "Петров",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
    "Романов",
    "Воробьёв",
    "Белов",
    "Тарасов",
    "Жуков",
    "Комаров",
    "Киселёв",
    "Ковалевский",
    "Вишневский",
]
RU_MIDDLE_M = ["Иванович", "Петрович", "Сергеевич", "Андреевич", "Николаевич", "Алексеевич"]
RU_MIDDLE_F = ["Ивановна", "Петровна", "Сергеевна", "Андреевна", "Николаевна", "Алексеевна"]
EN_MALE = ["John", "Michael", "David", "James", "Robert", "Daniel", "Thomas", "Mark", "Paul", "Peter"]
EN_FEMALE = ["Anna", "Emily", "Sarah", "Laura", "Emma", "Julia", "Kate", "Lisa", "Maria", "Helen"]
EN_LAST = [
    "Smith",
    "Johnson",
    "Brown",
    "Miller",
    "Wilson",
    "Taylor",
    "Anderson",
    "Clark",
    "Walker",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
    "Baker",
    "Müller",
    "Schmidt",
    "O'Brien",
]
POSITIONS = [
    "Менеджер по продажам",
    "Бухгалтер",
    "Программист",
    "Аналитик",
    "Руководитель отдела",
    "HR-менеджер",
    "Маркетолог",
    "Дизайнер",
    "Юрист",
    "Офис-менеджер",
    "Sales Manager",
    "Software Engineer",
    "QA Engineer",
    "Project Manager",
    "",
]
CITIES = ["Москва", "Санкт-Петербург", "Казань", "Новосибирск", "Екатеринбург", "Berlin", "London", ""]
DEPARTMENTS = [
    "Бухгалтерия",
    "Отдел продаж",
    "Маркетинг",
    "ИТ-отдел",
    "Отдел кадров",
    "Юридический отдел",
    "Производство",
    "Логистика",
    "Служба поддержки",
    "Sales EMEA",
    "R&D",
    "Закупки",
    "Финансовый отдел",
    "Administration",
    "Разработка",
    "Тестирование",
    "Дизайн",
]
GROUPS = [
    "Проект «Альфа»",
    "Запуск сайта",
    "CRM внедрение",
    "Office move 2025",
    "Тендеры",
    "Мобильное приложение",
    "Годовой отчёт",
    "Partner program",
]
TASK_VERBS = [
    "Подготовить",
    "Согласовать",
    "Проверить",
    "Отправить",
    "Обновить",
    "Разработать",
    "Провести",
    "Review",
    "Prepare",
    "Fix",
    "Update",
    "Call",
]
TASK_OBJECTS = [
    "отчёт за квартал",
    "договор с поставщиком",
    "презентацию для клиента",
    "бюджет отдела",
    "счёт №{n}",
    "ТЗ на доработку",
    "встречу с партнёрами",
    "план продаж",
    "client proposal",
    "bug #{n}",
    "landing page",
    "инвентаризацию склада",
    "акт сверки",
    "onboarding docs",
]
EVENT_NAMES = [
    "Планёрка",
    "Встреча с клиентом",
    "1:1",
    "Созвон по проекту",
    "Демо продукта",
    "Обучение",
    "Weekly sync",
    "Interview",
    "Корпоратив",
    "Отпуск",
    "Командировка",
    "Sprint review",
    "Обед с партнёрами",
    "Board meeting",
]
LOCATIONS = ["", "", "Переговорная 1", "Переговорная 2", "Zoom", "Офис клиента", "Room 3.14"]
TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        [
            "a",
            "b",
            "v",
            "g",
            "d",
            "e",
            "e",
            "zh",
            "z",
            "i",
            "y",
            "k",
            "l",
            "m",
            "n",
            "o",
            "p",
            "r",
            "s",
            "t",
            "u",
            "f",
            "kh",
            "ts",
            "ch",
            "sh",
            "shch",
            "",
            "y",
            "",
            "e",
            "yu",
            "ya",
        ],
        strict=True,
    )
)


def translit(text: str) -> str:
    return "".join(TRANSLIT.get(ch, ch) for ch in text.lower() if ch.isalnum())


def _female_last(last: str) -> str:
    if last.endswith("ский"):
        return last[:-2] + "ая"
    if last.endswith(("ов", "ев", "ёв", "ин")):
        return last + "а"
    return last


def anchor_timestamp(anchor: date, utc_offset_hours: int) -> float:
    """09:00 local time on the anchor day, as a Unix timestamp."""
    tz = timezone(timedelta(hours=utc_offset_hours))
    return datetime.combine(anchor, time(9, 0), tz).timestamp()


def seed_portal(
    state: PortalState,
    *,
    users: int,
    tasks: int,
    events: int,
    seed: int,
    anchor: date,
    utc_offset_hours: int = 3,
    not_after: float | None = None,
) -> None:
    """Fill ``state`` deterministically from ``seed`` and ``anchor`` (the modelled "today").

    ``not_after`` (the portal clock at seeding) keeps every seeded date in the past: seeding at
    09:00 of a day whose 09:00 has not come yet would date some changes in the future, which no
    real portal does and which would hide later edits from clients reading ``>=CHANGED_DATE``.
    """
    rng = random.Random(seed)
    now = anchor_timestamp(anchor, utc_offset_hours)
    if not_after is not None:
        now = min(now, not_after)
    users = max(users, 1)
    _seed_departments(state, rng, users)
    _seed_users(state, rng, users, now)
    _seed_groups(state, rng, users, now)
    _seed_tasks(state, rng, tasks, now)
    _seed_events(state, rng, events, now, utc_offset_hours)
    state.seeded_counts = {
        "users": len(state.users),
        "tasks": len(state.tasks),
        "events": len(state.events),
        "departments": len(state.departments),
    }


def _seed_departments(state: PortalState, rng: random.Random, users: int) -> None:
    count = max(4, min(users // 25, 400))
    state.departments[1] = Department(id=1, name="Компания", sort=500, parent=None, head=1)
    for dept_id in range(2, count + 1):
        base = DEPARTMENTS[(dept_id - 2) % len(DEPARTMENTS)]
        suffix = (dept_id - 2) // len(DEPARTMENTS)
        name = base if suffix == 0 else f"{base} {suffix + 1}"
        parent = 1 if dept_id <= 5 else rng.randint(1, dept_id - 1)
        state.departments[dept_id] = Department(
            id=dept_id, name=name, sort=rng.choice([100, 200, 500]), parent=parent, head=None
        )


def _seed_users(state: PortalState, rng: random.Random, count: int, now: float) -> None:
    dept_ids = list(state.departments)
    used_emails: set[str] = set()
    for uid in range(1, count + 1):
        female = rng.random() < 0.45
        latin = rng.random() < 0.2
        if latin:
            first = rng.choice(EN_FEMALE if female else EN_MALE)
            last = rng.choice(EN_LAST)
            second = ""
            local = f"{first}.{last}".lower().replace("'", "").replace("ü", "ue")
            domain = "example.com"
        else:
            first = rng.choice(RU_FEMALE if female else RU_MALE)
            last = rng.choice(RU_LAST)
            last = _female_last(last) if female else last
            second = rng.choice(RU_MIDDLE_F if female else RU_MIDDLE_M) if rng.random() < 0.5 else ""
            local = f"{translit(first)}.{translit(last)}"
            domain = "example.ru"
        email = f"{local}@{domain}"
        if email in used_emails:
            email = f"{local}{uid}@{domain}"
        is_admin = uid == 1
        extranet = not is_admin and rng.random() < 0.04
        has_email = is_admin or rng.random() > 0.06
        if has_email:
            used_emails.add(email)
        active = is_admin or rng.random() > 0.08
        depts: list[int] = []
        if not extranet:
            depts = [1] if is_admin else [rng.choice(dept_ids[1:])]
            if rng.random() < 0.05:
                depts.append(rng.choice(dept_ids))
        has_phone = rng.random() > 0.15
        registered = now - rng.uniform(30, 2000) * DAY
        reg_date = datetime.fromtimestamp(registered, UTC).date().isoformat()
        birthday = ""
        if rng.random() < 0.7:
            birthday = date(rng.randint(1965, 2002), rng.randint(1, 12), rng.randint(1, 28)).isoformat()
        last_login = now - rng.uniform(0, 60) * DAY if active and rng.random() < 0.9 else None
        state.users.add(
            User(
                id=uid,
                active=active,
                name=first,
                last_name=last,
                second_name=second,
                email=email if has_email else "",
                gender="F" if female else "M",
                birthday=birthday,
                position=rng.choice(POSITIONS),
                city=rng.choice(CITIES),
                work_phone=f"+7 495 {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}"
                if has_phone and rng.random() < 0.5
                else "",
                mobile=f"+7 9{rng.randint(10, 99)} {rng.randint(100, 999)}-{rng.randint(10, 99)}-"
                f"{rng.randint(10, 99)}"
                if has_phone
                else "",
                departments=depts,
                user_type="extranet" if extranet else "employee",
                date_register=reg_date,
                last_login=last_login,
                timestamp_x=max(registered, (last_login or registered)),
                is_online=active and rng.random() < 0.1,
                employment_date=reg_date if not extranet and rng.random() < 0.8 else "",
                xml_id=f"emp-{uid:06d}" if rng.random() < 0.3 else "",
            )
        )
    for dept in state.departments.values():
        if dept.head is None and rng.random() < 0.7:
            dept.head = rng.randint(1, count)


def _seed_groups(state: PortalState, rng: random.Random, users: int, now: float) -> None:
    # Flags come from the id, not the rng, so adding them left every other seeded row unchanged.
    for gid in range(1, max(2, min(users // 100, 40)) + 1):
        base = GROUPS[(gid - 1) % len(GROUPS)]
        name = base if gid <= len(GROUPS) else f"{base} {gid}"
        state.groups[gid] = Group(
            id=gid,
            name=name,
            members=rng.randint(2, 40),
            owner_id=1 + (gid * 7) % users,
            created=now - (400 - gid * 9) * 86400,
            visible=gid % 5 != 2,  # group 2 is invisible even on the smallest portal
            opened=gid % 3 != 0,
            closed=gid % 9 == 0,
            project=gid % 4 == 0,
            description=f"{name}: рабочая группа",
        )


def _seed_tasks(state: PortalState, rng: random.Random, count: int, now: float) -> None:
    n_users = len(state.users)
    group_ids = list(state.groups)
    rand = rng.random
    task_id = 0
    for _ in range(count):
        task_id += 1 + (1 if rand() < 0.03 else 0)  # a few gaps, as after deletions
        created = now - rand() * 365 * DAY
        r = rand()
        status = 2 if r < 0.25 else 3 if r < 0.45 else 4 if r < 0.5 else 5 if r < 0.92 else 6
        age = now - created
        changed = created + rand() * min(age, 60 * DAY)
        closed = changed if status == 5 else None
        deadline = created + (1 + rand() * 30) * DAY if rand() < 0.7 else None
        plan_start = plan_end = None
        if rand() < 0.2:
            plan_start = created + rand() * 5 * DAY
            plan_end = plan_start + (1 + rand() * 10) * DAY
        responsible = 1 + int(rand() * n_users)
        creator = 1 + int(rand() * n_users)
        verb = TASK_VERBS[int(rand() * len(TASK_VERBS))]
        obj = TASK_OBJECTS[int(rand() * len(TASK_OBJECTS))].replace("{n}", str(task_id % 9973))
        accomplices = [1 + int(rand() * n_users)] if rand() < 0.1 else []
        auditors = [creator] if rand() < 0.15 else []
        state.tasks.add(
            Task(
                id=task_id,
                title=f"{verb} {obj}",
                description="" if rand() < 0.4 else f"Подробности по задаче {task_id}",
                status=status,
                priority=0 if r < 0.1 else 2 if rand() < 0.15 else 1,
                created_by=creator,
                responsible_id=responsible,
                group_id=group_ids[int(rand() * len(group_ids))] if rand() < 0.2 else 0,
                created_date=int(created),
                changed_date=int(changed),
                changed_by=responsible,
                closed_date=int(closed) if closed else None,
                deadline=int(deadline) if deadline else None,
                start_date_plan=int(plan_start) if plan_start else None,
                end_date_plan=int(plan_end) if plan_end else None,
                accomplices=accomplices,
                auditors=auditors,
            )
        )


def _seed_events(
    state: PortalState, rng: random.Random, count: int, now: float, utc_offset_hours: int
) -> None:
    n_users = len(state.users)
    group_ids = list(state.groups)
    rand = rng.random
    offset = utc_offset_hours * 3600
    day0 = (now + offset) // DAY * DAY - offset  # local midnight of the anchor day
    state.section_for("company_calendar", 0, created=now - 400 * DAY)
    for event_id in range(1, count + 1):
        r = rand()
        if r < 0.8:
            cal_type, owner = "user", 1 + int(rand() * n_users)
        elif r < 0.92:
            cal_type, owner = "company_calendar", 0
        else:
            cal_type, owner = "group", group_ids[int(rand() * len(group_ids))]
        day = day0 + int(rand() * 90 - 30) * DAY
        all_day = rand() < 0.05
        if all_day:
            start, end = day, day + DAY * int(1 + rand() * 3) - DAY
        else:
            start = day + (9 + int(rand() * 9)) * 3600 + (30 * 60 if rand() < 0.5 else 0)
            end = start + (1 + int(rand() * 4)) * 30 * 60
        creator = owner if cal_type == "user" else 1 + int(rand() * n_users)
        created = min(start, now) - rand() * 20 * DAY
        section = state.section_for(cal_type, owner, created=created - 100 * DAY)
        meeting = rand() < 0.2
        attendees = (
            sorted({creator, *(1 + int(rand() * n_users) for _ in range(1 + int(rand() * 4)))})
            if meeting
            else [creator]
        )
        state.add_event(
            CalendarEvent(
                id=event_id,
                cal_type=cal_type,
                owner_id=owner,
                section_id=section.id,
                name=EVENT_NAMES[int(rand() * len(EVENT_NAMES))],
                description="" if rand() < 0.6 else "Повестка в файле",
                date_from=start,
                date_to=end,
                skip_time=all_day,
                created_by=creator,
                date_create=int(created),
                timestamp_x=int(created),
                location=LOCATIONS[int(rand() * len(LOCATIONS))],
                accessibility="absent" if all_day else "busy",
                importance="high" if rand() < 0.1 else "normal",
                private=rand() < 0.05,
                is_meeting=meeting,
                attendees=attendees,
            )
        )
