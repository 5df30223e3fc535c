"""The report's summary: posts and engagement per group, kept by the database itself (both backends' DDL).

``report_summary`` holds one row per group of posts the report shows: the UTC day of ``due_at`` (``due_day``:
the summary answers windows of whole UTC days), rule, account, platform, state, variant (``-1``:
not recorded, a post planned before the variant was stored) and the rule's local day (the post id's key,
``rule:account:YYYY-MM-DDTHH:MM``), with the posts of the group, how many were read (a reading with counts),
and each count summed over every part's latest reading with counts, with how many such readings knew the
count (``*_known``: a sum of none is unknown, not 0).

Triggers keep it, in the same transaction as every change (there is no second writer that could drift):

* a post inserted, updated in a grouped column (state, rule, account, platform, due time, variant) or deleted
  moves its whole contribution (1 post, its read flag, its latest counts) out of its old group into its new one;
  a group that holds no post any more is deleted;
* a reading with counts that is the newest of its part adds its difference to the part's previous latest
  reading with counts, and marks the post read if it is its first; an older reading or a ``gone`` one changes
  nothing (the latest reading with counts stays the same);
* readings are never changed or deleted while their post exists (they are a time series; a trigger refuses).

The same reading trigger keeps ``posts.engagement_total``: likes + reposts + replies + quotes of the post's
latest readings with counts (NULL: none yet), so the top posts of a window are the first entries of the index
``posts_engagement`` (total, due time, id) that fall in it, not a pass over every reading.

So the summary answers the report of the latest readings; a report ``as_of`` an instant before the latest
reading takes the exact path over the posts and readings (``sqlite_report`` / ``pg_report``).
``tests/contract/test_report_summary.py`` compares it with a full recomputation after random changes.
"""

from __future__ import annotations

COUNTS = ("likes", "reposts", "replies", "quotes")
KEY = ("due_day", "rule", "account", "platform", "state", "variant", "day")
# The primary key in the report's order (local day first), so a window's rows come out sorted, a group's rows of
# two UTC days side by side (the window's UTC days filter them; its local days, one more each side, bound them).
PRIMARY = ("day", "rule", "account", "platform", "state", "variant", "due_day")
VALUES = ("posts", "read", *(name for count in COUNTS for name in (count, f"{count}_known")))
_COLUMNS = ", ".join((*KEY, *VALUES))
_ADD = ", ".join(f"{name} = report_summary.{name} + excluded.{name}" for name in VALUES)
_UPSERT_TAIL = f"ON CONFLICT ({', '.join(PRIMARY)}) DO UPDATE SET {_ADD}"

# -- SQLite ----------------------------------------------------------------------------------------------------

_SQLITE_TABLE = f"""
CREATE TABLE report_summary (
    due_day TEXT NOT NULL, rule TEXT NOT NULL, account TEXT NOT NULL, platform TEXT NOT NULL,
    state TEXT NOT NULL, variant INTEGER NOT NULL, day TEXT NOT NULL,
    {", ".join(f"{name} INTEGER NOT NULL" for name in VALUES)},
    PRIMARY KEY ({", ".join(PRIMARY)})
) STRICT, WITHOUT ROWID
"""


def _sqlite_group(r: str) -> str:
    """The summary key of the post row ``r`` (NEW or OLD, or a table alias)."""
    return (
        f"substr({r}.due_at, 1, 10), {r}.rule, {r}.account, {r}.platform, {r}.state, COALESCE({r}.variant, -1),"
        f" substr({r}.id, length({r}.rule) + length({r}.account) + 3, 10)"
    )


def _sqlite_move(r: str, sign: int) -> str:
    """Add (``sign`` 1) or take away (-1) the post ``r`` with its engagement."""
    counts = ", ".join(f"{sign} * COALESCE(SUM(e.{c}), 0), {sign} * COUNT(e.{c})" for c in COUNTS)
    statement = (
        f"INSERT INTO report_summary ({_COLUMNS}) SELECT {_sqlite_group(r)}, {sign}, {sign} * (COUNT(*) > 0),"
        f" {counts} FROM engagement e WHERE e.post_id = {r}.id AND e.gone = 0 AND e.read_at = (SELECT"
        f" MAX(m.read_at) FROM engagement m WHERE m.post_id = {r}.id AND m.part_index = e.part_index"
        f" AND m.gone = 0) {_UPSERT_TAIL};"
    )
    if sign < 0:
        statement += (
            f" DELETE FROM report_summary WHERE ({', '.join(KEY)}) = ({_sqlite_group(r)}) AND posts = 0;"
        )
    return statement


_GROUPED = ("state", "rule", "account", "platform", "due_at", "variant")
_TOTAL = " + ".join(f"COALESCE({{r}}.{c}, 0)" for c in COUNTS)

_SQLITE_DELTAS = ", ".join(
    f"COALESCE(NEW.{c}, 0) - COALESCE(prev.{c}, 0), (NEW.{c} IS NOT NULL) - (prev.{c} IS NOT NULL)"
    for c in COUNTS
)
_SQLITE_READING = f"""
CREATE TRIGGER report_summary_reading AFTER INSERT ON engagement
WHEN NEW.gone = 0 AND NOT EXISTS (SELECT 1 FROM engagement l WHERE l.post_id = NEW.post_id
    AND l.part_index = NEW.part_index AND l.gone = 0 AND l.read_at > NEW.read_at)
BEGIN
    INSERT INTO report_summary ({_COLUMNS})
    SELECT {_sqlite_group("p")}, 0,
        NOT EXISTS (SELECT 1 FROM engagement o WHERE o.post_id = NEW.post_id AND o.gone = 0
            AND NOT (o.part_index = NEW.part_index AND o.read_at = NEW.read_at)),
        {_SQLITE_DELTAS}
    FROM posts p LEFT JOIN (SELECT {", ".join(COUNTS)} FROM engagement b WHERE b.post_id = NEW.post_id
        AND b.part_index = NEW.part_index AND b.gone = 0 AND b.read_at < NEW.read_at
        ORDER BY b.read_at DESC LIMIT 1) prev ON 1
    WHERE p.id = NEW.post_id
    {_UPSERT_TAIL};
    UPDATE posts SET engagement_total = COALESCE(engagement_total, 0) + {_TOTAL.format(r="NEW")}
        - COALESCE((SELECT {_TOTAL.format(r="b")} FROM engagement b WHERE b.post_id = NEW.post_id
            AND b.part_index = NEW.part_index AND b.gone = 0 AND b.read_at < NEW.read_at
            ORDER BY b.read_at DESC LIMIT 1), 0)
    WHERE id = NEW.post_id;
END
"""

# A new post: one more in its group. It has no readings yet (a reading refers to its post: the foreign key), so
# the insert does not look for any.
_ZEROS = ", ".join("0" for _ in VALUES[1:])
_SQLITE_INSERT = (
    "CREATE TRIGGER report_summary_insert AFTER INSERT ON posts"
    f" BEGIN INSERT INTO report_summary ({_COLUMNS}) VALUES ({_sqlite_group('NEW')}, 1, {_ZEROS}) {_UPSERT_TAIL}; END"
)

SQLITE_DDL = (
    _SQLITE_TABLE,
    _SQLITE_INSERT,
    f"CREATE TRIGGER report_summary_delete BEFORE DELETE ON posts BEGIN {_sqlite_move('OLD', -1)} END",
    f"CREATE TRIGGER report_summary_move AFTER UPDATE OF {', '.join(_GROUPED)} ON posts"
    f" WHEN {' OR '.join(f'OLD.{c} IS NOT NEW.{c}' for c in _GROUPED)}"
    f" BEGIN {_sqlite_move('OLD', -1)} {_sqlite_move('NEW', 1)} END",
    _SQLITE_READING,
    "CREATE TRIGGER engagement_kept BEFORE UPDATE ON engagement"
    " BEGIN SELECT RAISE(ABORT, 'a reading is never changed'); END",
    "CREATE TRIGGER engagement_kept_while_posted BEFORE DELETE ON engagement"
    " WHEN EXISTS (SELECT 1 FROM posts WHERE id = OLD.post_id)"
    " BEGIN SELECT RAISE(ABORT, 'a reading is deleted only with its post'); END",
)

# Every post already in the ledger, once (the migration's backfill; also the contract test's recomputation).
_RECOMPUTE = """
SELECT {group}, COUNT(*), COALESCE(SUM(pp.read), 0), {counts}
FROM posts p LEFT JOIN ({per_post}) pp ON pp.post_id = p.id
GROUP BY {group}
"""

SQLITE_PER_POST = (
    "SELECT e.post_id, COUNT(*) > 0 AS read, "
    + ", ".join(f"COALESCE(SUM(e.{c}), 0) AS {c}, COUNT(e.{c}) AS {c}_known" for c in COUNTS)
    + " FROM engagement e WHERE e.gone = 0 AND e.read_at = (SELECT MAX(m.read_at) FROM engagement m"
    " WHERE m.post_id = e.post_id AND m.part_index = e.part_index AND m.gone = 0) GROUP BY e.post_id"
)
_RECOMPUTE_COUNTS = ", ".join(f"COALESCE(SUM(pp.{c}), 0), COALESCE(SUM(pp.{c}_known), 0)" for c in COUNTS)
SQLITE_RECOMPUTE = _RECOMPUTE.format(
    group=_sqlite_group("p"), counts=_RECOMPUTE_COUNTS, per_post=SQLITE_PER_POST
)

# -- PostgreSQL -------------------------------------------------------------------------------------------------

_PG_TABLE = f"""
CREATE TABLE report_summary (
    due_day date NOT NULL, rule text NOT NULL, account text NOT NULL, platform text NOT NULL,
    state text NOT NULL, variant integer NOT NULL, day text NOT NULL,
    {", ".join(f"{name} bigint NOT NULL" for name in VALUES)},
    PRIMARY KEY ({", ".join(PRIMARY)})
)
"""


def _pg_group(r: str) -> str:
    return (
        f"({r}.due_at AT TIME ZONE 'UTC')::date, {r}.rule, {r}.account, {r}.platform, {r}.state,"
        f" COALESCE({r}.variant, -1), substr({r}.id, length({r}.rule) + length({r}.account) + 3, 10)"
    )


# Add (sign 1) or take away (-1) one post with its engagement (the latest reading with counts of each part).
_PG_MOVE = f"""
CREATE FUNCTION report_summary_move(r posts, sign integer) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_summary ({_COLUMNS})
    SELECT {_pg_group("r")}, sign, sign * (COUNT(*) > 0)::int,
        {", ".join(f"sign * COALESCE(SUM(l.{c}), 0), sign * COUNT(l.{c})" for c in COUNTS)}
    FROM (SELECT DISTINCT ON (e.part_index) e.likes, e.reposts, e.replies, e.quotes FROM engagement e
          WHERE e.post_id = r.id AND NOT e.gone ORDER BY e.part_index, e.read_at DESC) l
    {_UPSERT_TAIL};
    IF sign < 0 THEN
        DELETE FROM report_summary WHERE ({", ".join(KEY)}) = ({_pg_group("r")}) AND posts = 0;
    END IF;
END $$
"""

# New posts have no readings yet (the foreign key): an insert counts them per group, once per statement (a
# re-plan's set-based insert of thousands of posts: one aggregate, not a function call per row).
_PG_INSERTED = f"""
CREATE FUNCTION report_summary_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_summary ({_COLUMNS})
    SELECT {_pg_group("n")}, COUNT(*), {_ZEROS} FROM inserted n GROUP BY 1, 2, 3, 4, 5, 6, 7
    {_UPSERT_TAIL};
    RETURN NULL;
END $$
"""

_PG_POSTS = """
CREATE FUNCTION report_summary_posts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM report_summary_move(OLD, -1); END IF;
    IF TG_OP = 'UPDATE' THEN PERFORM report_summary_move(NEW, 1); END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NULL;
END $$
"""

# The same, an update's two groups in the order of their keys (m014_summary_lock_order): two posts that move
# between the same two groups in opposite directions (a claim and a release) lock their rows in one order, so
# they never wait for each other in a cycle (a deadlock the server would break by rolling one back).
PG_POSTS_IN_KEY_ORDER = f"""
CREATE OR REPLACE FUNCTION report_summary_posts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN PERFORM report_summary_move(OLD, -1); RETURN OLD; END IF;
    IF ROW({_pg_group("OLD")}) <= ROW({_pg_group("NEW")}) THEN
        PERFORM report_summary_move(OLD, -1);
        PERFORM report_summary_move(NEW, 1);
    ELSE
        PERFORM report_summary_move(NEW, 1);
        PERFORM report_summary_move(OLD, -1);
    END IF;
    RETURN NULL;
END $$
"""

_PG_DELTAS = ", ".join(
    f"COALESCE(NEW.{c}, 0) - COALESCE(prev_{c}, 0), (NEW.{c} IS NOT NULL)::int - (prev_{c} IS NOT NULL)::int"
    for c in COUNTS
)
_PG_PREV_TOTAL = " + ".join(f"COALESCE(prev_{c}, 0)" for c in COUNTS)
_PG_PREV = " ".join(f"prev_{c} integer;" for c in COUNTS)

# The post's row is locked first (as an update of the post would), so of two readings of one post the second
# waits for the first and then sees it (each statement of a READ COMMITTED function takes a new snapshot).
_PG_READING = f"""
CREATE FUNCTION report_summary_reading() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p posts;
    is_first boolean;
    {_PG_PREV}
    found_prev boolean;
BEGIN
    SELECT * INTO p FROM posts WHERE id = NEW.post_id FOR NO KEY UPDATE;
    IF EXISTS (SELECT 1 FROM engagement WHERE post_id = NEW.post_id AND part_index = NEW.part_index
               AND NOT gone AND read_at > NEW.read_at) THEN
        RETURN NULL;
    END IF;
    SELECT {", ".join(COUNTS)}, true INTO {", ".join(f"prev_{c}" for c in COUNTS)}, found_prev
    FROM engagement WHERE post_id = NEW.post_id AND part_index = NEW.part_index AND NOT gone
        AND read_at < NEW.read_at ORDER BY read_at DESC LIMIT 1;
    is_first := NOT EXISTS (SELECT 1 FROM engagement WHERE post_id = NEW.post_id AND NOT gone
                         AND (part_index, read_at) <> (NEW.part_index, NEW.read_at));
    INSERT INTO report_summary ({_COLUMNS})
    VALUES ({_pg_group("p")}, 0, is_first::int, {_PG_DELTAS})
    {_UPSERT_TAIL};
    UPDATE posts SET engagement_total = COALESCE(engagement_total, 0) + {_TOTAL.format(r="NEW")} - ({_PG_PREV_TOTAL})
    WHERE id = NEW.post_id;
    RETURN NULL;
END $$
"""

_PG_KEPT = """
CREATE FUNCTION engagement_kept() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN RAISE EXCEPTION 'a reading is never changed'; END IF;
    IF EXISTS (SELECT 1 FROM posts WHERE id = OLD.post_id) THEN
        RAISE EXCEPTION 'a reading is deleted only with its post';
    END IF;
    RETURN OLD;
END $$
"""

PG_DDL = (
    _PG_TABLE,
    _PG_MOVE,
    _PG_INSERTED,
    _PG_POSTS,
    _PG_READING,
    _PG_KEPT,
    "CREATE TRIGGER report_summary_insert AFTER INSERT ON posts REFERENCING NEW TABLE AS inserted"
    " FOR EACH STATEMENT EXECUTE FUNCTION report_summary_inserted()",
    # before the row goes: the cascade has not taken its readings yet
    "CREATE TRIGGER report_summary_delete BEFORE DELETE ON posts FOR EACH ROW"
    " EXECUTE FUNCTION report_summary_posts()",
    f"CREATE TRIGGER report_summary_move AFTER UPDATE OF {', '.join(_GROUPED)} ON posts FOR EACH ROW"
    f" WHEN ({' OR '.join(f'OLD.{c} IS DISTINCT FROM NEW.{c}' for c in _GROUPED)})"
    " EXECUTE FUNCTION report_summary_posts()",
    "CREATE TRIGGER report_summary_reading AFTER INSERT ON engagement FOR EACH ROW WHEN (NOT NEW.gone)"
    " EXECUTE FUNCTION report_summary_reading()",
    "CREATE TRIGGER engagement_kept BEFORE UPDATE OR DELETE ON engagement FOR EACH ROW"
    " EXECUTE FUNCTION engagement_kept()",
)

PG_PER_POST = (
    "SELECT post_id, (COUNT(*) > 0)::int AS read, "
    + ", ".join(f"COALESCE(SUM({c}), 0) AS {c}, COUNT({c}) AS {c}_known" for c in COUNTS)
    + " FROM (SELECT DISTINCT ON (post_id, part_index) post_id, likes, reposts, replies, quotes"
    " FROM engagement WHERE NOT gone ORDER BY post_id, part_index, read_at DESC) l GROUP BY post_id"
)
PG_RECOMPUTE = _RECOMPUTE.format(group=_pg_group("p"), counts=_RECOMPUTE_COUNTS, per_post=PG_PER_POST)


def backfill_sql(recompute: str) -> str:
    """The summary of every post already in the ledger (a migration's one full pass)."""
    return f"INSERT INTO report_summary ({_COLUMNS}) {recompute}"


# Each post's engagement total, from its readings (the migrations' backfill; the contract test's recomputation).
SQLITE_TOTALS = f"SELECT post_id, {' + '.join(COUNTS)} AS total FROM ({SQLITE_PER_POST}) pp"
PG_TOTALS = f"SELECT post_id, {' + '.join(COUNTS)} AS total FROM ({PG_PER_POST}) pp"


def backfill_totals_sql(totals: str) -> str:
    """Set each read post's ``engagement_total`` (a migration's one full pass)."""
    return f"UPDATE posts SET engagement_total = t.total FROM ({totals}) AS t WHERE posts.id = t.post_id"
