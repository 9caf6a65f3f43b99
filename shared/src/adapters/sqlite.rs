//! The embedded store: one SQLite file. Every state change that must happen once is a single
//! conditional statement or a transaction under the connection's lock.

use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::domain::{
    AuditAction, AuditEntry, AuditId, Lang, Membership, MembershipId, MembershipStatus, Notification, NotificationId,
    NotificationKind, Payment, PaymentId, PaymentStatus, TelegramUserId, TokenHash, TokenRecord, TokenStatus, UserId,
    extended_end,
};
use crate::ports::{
    AccessStore, Applied, AuditLog, Counters, LifecycleStore, NotificationStore, Page, PageRequest, PaymentStore,
    RateLimits, Review, StoreError, UpdateLog,
};

/// Each step brings the schema from version i to i + 1; a store is migrated on open.
const MIGRATIONS: [&str; 5] = [V1, V2, V3, V4, V5];
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const V1: &str = "
CREATE TABLE payments (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  email TEXT,
  offer_id TEXT NOT NULL,
  transaction_id TEXT NOT NULL UNIQUE,
  user_info TEXT,
  status TEXT NOT NULL,
  admin_notes TEXT,
  reject_reason TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  reviewed_by TEXT,
  lang TEXT NOT NULL
);
CREATE INDEX payments_by_user ON payments(user_id, id);
CREATE INDEX payments_by_status ON payments(status, id);

CREATE TABLE tokens (
  hash TEXT PRIMARY KEY,
  payment_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  offer_name TEXT NOT NULL,
  days INTEGER NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  telegram_user_id INTEGER,
  membership_id TEXT,
  used_at TEXT
);
CREATE INDEX tokens_by_payment ON tokens(payment_id, status);
CREATE INDEX tokens_by_membership ON tokens(membership_id);

CREATE TABLE memberships (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  telegram_user_id INTEGER NOT NULL,
  telegram_username TEXT,
  payment_id TEXT NOT NULL,
  offer_name TEXT NOT NULL,
  pending_days INTEGER NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  joined_at TEXT,
  expires_at TEXT,
  in_channel INTEGER NOT NULL,
  left_at TEXT,
  invite_link TEXT,
  invite_expires_at TEXT
);
CREATE INDEX memberships_by_account ON memberships(telegram_user_id, status, id);
CREATE INDEX memberships_by_user ON memberships(user_id, id);
CREATE UNIQUE INDEX memberships_by_invite ON memberships(invite_link) WHERE invite_link IS NOT NULL;
CREATE INDEX memberships_by_end ON memberships(status, expires_at);

CREATE TABLE notifications (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  title TEXT NOT NULL,
  message TEXT NOT NULL,
  action_url TEXT,
  created_at TEXT NOT NULL,
  read INTEGER NOT NULL
);
CREATE INDEX notifications_by_user ON notifications(user_id, id);

CREATE TABLE processed_updates (
  update_id INTEGER PRIMARY KEY,
  at TEXT NOT NULL
);
";

const V2: &str = "
ALTER TABLE memberships ADD COLUMN ended_at TEXT;
ALTER TABLE memberships ADD COLUMN end_reason TEXT;
CREATE INDEX tokens_by_status_end ON tokens(status, expires_at);
CREATE INDEX tokens_by_user ON tokens(user_id, status);
CREATE INDEX notifications_by_age ON notifications(read, created_at);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE warnings (
  membership_id TEXT NOT NULL,
  threshold INTEGER NOT NULL,
  period_end TEXT NOT NULL,
  PRIMARY KEY (membership_id, threshold, period_end)
);
CREATE TABLE job_runs (job TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE audit (
  id TEXT PRIMARY KEY,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  user_id TEXT,
  telegram_user_id INTEGER,
  details TEXT NOT NULL
);
CREATE INDEX audit_by_user ON audit(user_id, id);
";

const V3: &str = "
CREATE TABLE effects (
  key TEXT PRIMARY KEY,
  done INTEGER NOT NULL,
  lease_until TEXT NOT NULL
);
";

const V4: &str = "
CREATE TABLE rate_limits (
  key TEXT PRIMARY KEY,
  count INTEGER NOT NULL,
  until TEXT NOT NULL
);
";

const V5: &str = "
CREATE INDEX memberships_by_ended ON memberships(ended_at) WHERE ended_at IS NOT NULL;
";

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (and creates or migrates) the store file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(fault)?;
        Self::init(conn)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(fault)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(fault)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(fault)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(fault)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(fault)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Unavailable(format!(
                "the store was written by a newer telegate (schema {version}, this one knows {SCHEMA_VERSION})"
            )));
        }
        for (from, step) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction().map_err(fault)?;
            tx.execute_batch(step).map_err(fault)?;
            tx.pragma_update(None, "user_version", from as i64 + 1).map_err(fault)?;
            tx.commit().map_err(fault)?;
        }
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Unavailable("store lock poisoned".into()))?;
        f(&mut conn)
    }
}

fn fault(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Fixed-width UTC timestamps, so that text order is time order.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn time(row: &Row, col: &str) -> rusqlite::Result<DateTime<Utc>> {
    let raw: String = row.get(col)?;
    parse_time(col, &raw)
}

fn opt_time(row: &Row, col: &str) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let raw: Option<String> = row.get(col)?;
    raw.map(|r| parse_time(col, &r)).transpose()
}

fn parse_time(col: &str, raw: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|e| corrupt(col, e.to_string()))
}

fn corrupt(col: &str, why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, format!("{col}: {why}").into())
}

fn parsed<T, E: std::fmt::Display>(col: &str, r: Result<T, E>) -> rusqlite::Result<T> {
    r.map_err(|e| corrupt(col, e.to_string()))
}

fn payment_from(row: &Row) -> rusqlite::Result<Payment> {
    let user_info: Option<String> = row.get("user_info")?;
    let lang: String = row.get("lang")?;
    let reviewed_by: Option<String> = row.get("reviewed_by")?;
    Ok(Payment {
        id: parsed("id", PaymentId::parse(&row.get::<_, String>("id")?))?,
        user_id: parsed("user_id", UserId::parse(&row.get::<_, String>("user_id")?))?,
        email: row.get("email")?,
        offer_id: row.get("offer_id")?,
        transaction_id: row.get("transaction_id")?,
        user_info: user_info.map(|s| parsed("user_info", serde_json::from_str(&s))).transpose()?,
        status: parsed("status", PaymentStatus::parse(&row.get::<_, String>("status")?))?,
        admin_notes: row.get("admin_notes")?,
        reject_reason: row.get("reject_reason")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        reviewed_by: reviewed_by.map(|u| parsed("reviewed_by", UserId::parse(&u))).transpose()?,
        lang: Lang::from_code(Some(&lang)),
    })
}

fn token_from(row: &Row) -> rusqlite::Result<TokenRecord> {
    let tg: Option<i64> = row.get("telegram_user_id")?;
    let membership: Option<String> = row.get("membership_id")?;
    Ok(TokenRecord {
        hash: TokenHash::from_stored(row.get("hash")?),
        payment_id: parsed("payment_id", PaymentId::parse(&row.get::<_, String>("payment_id")?))?,
        user_id: parsed("user_id", UserId::parse(&row.get::<_, String>("user_id")?))?,
        offer_name: row.get("offer_name")?,
        days: row.get("days")?,
        status: parsed("status", TokenStatus::parse(&row.get::<_, String>("status")?))?,
        created_at: time(row, "created_at")?,
        expires_at: time(row, "expires_at")?,
        telegram_user_id: tg.map(|t| parsed("telegram_user_id", TelegramUserId::parse(t))).transpose()?,
        membership_id: membership.map(|m| parsed("membership_id", MembershipId::parse(&m))).transpose()?,
        used_at: opt_time(row, "used_at")?,
    })
}

fn membership_from(row: &Row) -> rusqlite::Result<Membership> {
    Ok(Membership {
        id: parsed("id", MembershipId::parse(&row.get::<_, String>("id")?))?,
        user_id: parsed("user_id", UserId::parse(&row.get::<_, String>("user_id")?))?,
        telegram_user_id: parsed("telegram_user_id", TelegramUserId::parse(row.get("telegram_user_id")?))?,
        telegram_username: row.get("telegram_username")?,
        payment_id: parsed("payment_id", PaymentId::parse(&row.get::<_, String>("payment_id")?))?,
        offer_name: row.get("offer_name")?,
        pending_days: row.get("pending_days")?,
        status: parsed("status", MembershipStatus::parse(&row.get::<_, String>("status")?))?,
        created_at: time(row, "created_at")?,
        joined_at: opt_time(row, "joined_at")?,
        expires_at: opt_time(row, "expires_at")?,
        in_channel: row.get("in_channel")?,
        left_at: opt_time(row, "left_at")?,
        invite_link: row.get("invite_link")?,
        invite_expires_at: opt_time(row, "invite_expires_at")?,
        ended_at: opt_time(row, "ended_at")?,
        end_reason: row.get("end_reason")?,
    })
}

fn notification_from(row: &Row) -> rusqlite::Result<Notification> {
    Ok(Notification {
        id: parsed("id", NotificationId::parse(&row.get::<_, String>("id")?))?,
        user_id: parsed("user_id", UserId::parse(&row.get::<_, String>("user_id")?))?,
        kind: parsed("kind", NotificationKind::parse(&row.get::<_, String>("kind")?))?,
        title: row.get("title")?,
        message: row.get("message")?,
        action_url: row.get("action_url")?,
        created_at: time(row, "created_at")?,
        read: row.get("read")?,
    })
}

fn get_membership(conn: &Connection, id: &str) -> Result<Option<Membership>, StoreError> {
    conn.query_row("SELECT * FROM memberships WHERE id = ?1", [id], membership_from).optional().map_err(fault)
}

fn get_token(conn: &Connection, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
    conn.query_row("SELECT * FROM tokens WHERE hash = ?1", [hash], token_from).optional().map_err(fault)
}

fn insert_membership(conn: &Connection, m: &Membership) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO memberships (id, user_id, telegram_user_id, telegram_username, payment_id, offer_name, pending_days,
           status, created_at, joined_at, expires_at, in_channel, left_at, invite_link, invite_expires_at,
           ended_at, end_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        params![
            m.id.as_str(),
            m.user_id.as_str(),
            m.telegram_user_id.get(),
            m.telegram_username,
            m.payment_id.as_str(),
            m.offer_name,
            m.pending_days,
            m.status.as_str(),
            ts(m.created_at),
            m.joined_at.map(ts),
            m.expires_at.map(ts),
            m.in_channel,
            m.left_at.map(ts),
            m.invite_link,
            m.invite_expires_at.map(ts),
            m.ended_at.map(ts),
            m.end_reason,
        ],
    )
    .map(drop)
    .map_err(fault)
}

/// Adds `delta` to a counter, in the caller's transaction.
fn bump(conn: &Connection, name: &str, delta: i64) -> Result<(), StoreError> {
    if delta == 0 {
        return Ok(());
    }
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
        params![name, delta],
    )
    .map(drop)
    .map_err(fault)
}

/// Tokens issued per hour: "recent" sums the last 24 buckets, whatever the size of the table.
fn hour_bucket(at: DateTime<Utc>) -> String {
    format!("tokens.issued.h{}", at.format("%Y%m%d%H"))
}

/// Memberships started per day: "recent joins" sums the last 7 buckets.
fn day_bucket(at: DateTime<Utc>) -> String {
    format!("members.joined.d{}", at.format("%Y%m%d"))
}

/// Keyset pagination: the rows after the cursor, newest first, and the cursor of the next page.
fn page_of<T>(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> String) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(id_of) } else { None };
    Page { items: rows, next }
}

#[async_trait]
impl PaymentStore for SqliteStore {
    async fn insert_payment(&self, p: &Payment) -> Result<(), StoreError> {
        self.with(|conn| {
            let user_info = p.user_info.as_ref().map(|v| v.to_string());
            conn.execute(
                "INSERT INTO payments (id, user_id, email, offer_id, transaction_id, user_info, status, admin_notes,
                   reject_reason, created_at, updated_at, reviewed_by, lang)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    p.id.as_str(),
                    p.user_id.as_str(),
                    p.email,
                    p.offer_id,
                    p.transaction_id,
                    user_info,
                    p.status.as_str(),
                    p.admin_notes,
                    p.reject_reason,
                    ts(p.created_at),
                    ts(p.updated_at),
                    p.reviewed_by.as_ref().map(UserId::as_str),
                    p.lang.as_str(),
                ],
            )
            .map(drop)
            .map_err(|e| if is_unique_violation(&e) { StoreError::Conflict("transaction_id_taken") } else { fault(e) })
        })
    }

    async fn payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT * FROM payments WHERE id = ?1", [id.as_str()], payment_from)
                .optional()
                .map_err(fault)
        })
    }

    async fn payments_of(&self, user: &UserId) -> Result<Vec<Payment>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare("SELECT * FROM payments WHERE user_id = ?1 ORDER BY id DESC").map_err(fault)?;
            let rows = stmt.query_map([user.as_str()], payment_from).map_err(fault)?;
            rows.collect::<Result<_, _>>().map_err(fault)
        })
    }

    async fn list_payments(
        &self,
        status: Option<PaymentStatus>,
        page: &PageRequest,
    ) -> Result<Page<Payment>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT * FROM payments WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3",
                )
                .map_err(fault)?;
            let rows = stmt
                .query_map(params![status.map(PaymentStatus::as_str), page.after, page.limit + 1], payment_from)
                .map_err(fault)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(fault)?;
            Ok(page_of(rows, page.limit, |p| p.id.to_string()))
        })
    }

    async fn review_payment(&self, id: &PaymentId, r: &Review) -> Result<Option<Payment>, StoreError> {
        self.with(|conn| {
            let changed = conn
                .execute(
                    "UPDATE payments SET status = ?1, reviewed_by = ?2, admin_notes = COALESCE(?3, admin_notes),
                       reject_reason = ?4, transaction_id = COALESCE(?5, transaction_id), updated_at = ?6
                     WHERE id = ?7 AND status = 'transaction_submitted'",
                    params![
                        r.to.as_str(),
                        r.by.as_str(),
                        r.admin_notes,
                        r.reason,
                        r.transaction_id,
                        ts(r.at),
                        id.as_str()
                    ],
                )
                .map_err(|e| {
                    if is_unique_violation(&e) { StoreError::Conflict("transaction_id_taken") } else { fault(e) }
                })?;
            if changed == 0 {
                return Ok(None);
            }
            conn.query_row("SELECT * FROM payments WHERE id = ?1", [id.as_str()], payment_from)
                .optional()
                .map_err(fault)
        })
    }
}

#[async_trait]
impl AccessStore for SqliteStore {
    async fn issue_token(&self, t: &TokenRecord) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let opened: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM tokens WHERE payment_id = ?1
                       AND (status = 'used' OR (status = 'bound' AND expires_at > ?2))",
                    params![t.payment_id.as_str(), ts(t.created_at)],
                    |r| r.get(0),
                )
                .map_err(fault)?;
            if opened > 0 {
                return Err(StoreError::Conflict("already_redeemed"));
            }
            // A pending membership opened by a token we replace will never start.
            tx.execute(
                "UPDATE memberships SET status = 'expired', ended_at = ?1, end_reason = 'token replaced'
                 WHERE status = 'pending' AND id IN
                   (SELECT membership_id FROM tokens WHERE payment_id = ?2 AND status = 'bound')",
                params![ts(t.created_at), t.payment_id.as_str()],
            )
            .map_err(fault)?;
            let replaced = tx
                .execute(
                    "UPDATE tokens SET status = 'replaced' WHERE payment_id = ?1 AND status IN ('pending', 'bound')",
                    [t.payment_id.as_str()],
                )
                .map_err(fault)?;
            bump(&tx, "tokens.total", 1)?;
            bump(&tx, "tokens.pending", 1 - replaced as i64)?;
            bump(&tx, &hour_bucket(t.created_at), 1)?;
            tx.execute(
                "INSERT INTO tokens (hash, payment_id, user_id, offer_name, days, status, created_at, expires_at,
                   telegram_user_id, membership_id, used_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, NULL, NULL)",
                params![
                    t.hash.as_str(),
                    t.payment_id.as_str(),
                    t.user_id.as_str(),
                    t.offer_name,
                    t.days,
                    t.status.as_str(),
                    ts(t.created_at),
                    ts(t.expires_at),
                ],
            )
            .map_err(fault)?;
            tx.commit().map_err(fault)
        })
    }

    async fn token(&self, hash: &TokenHash) -> Result<Option<TokenRecord>, StoreError> {
        self.with(|conn| get_token(conn, hash.as_str()))
    }

    async fn bind_token(
        &self,
        hash: &TokenHash,
        account: TelegramUserId,
        now: DateTime<Utc>,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE tokens SET status = 'bound', telegram_user_id = ?1
                 WHERE hash = ?2 AND status = 'pending' AND telegram_user_id IS NULL AND expires_at > ?3",
                params![account.get(), hash.as_str(), ts(now)],
            )
            .map_err(fault)?;
            let token = get_token(conn, hash.as_str())?;
            Ok(token.filter(|t| {
                t.telegram_user_id == Some(account) && matches!(t.status, TokenStatus::Bound | TokenStatus::Used)
            }))
        })
    }

    async fn open_membership(&self, hash: &TokenHash, m: &Membership) -> Result<Applied, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let claimed = tx
                .execute(
                    "UPDATE tokens SET membership_id = ?1 WHERE hash = ?2 AND membership_id IS NULL",
                    params![m.id.as_str(), hash.as_str()],
                )
                .map_err(fault)?;
            if claimed == 0 {
                return already(&tx, hash);
            }
            insert_membership(&tx, m)?;
            tx.commit().map_err(fault)?;
            Ok(Applied::Now(Box::new(m.clone())))
        })
    }

    async fn extend_membership(
        &self,
        hash: &TokenHash,
        id: &MembershipId,
        now: DateTime<Utc>,
    ) -> Result<Applied, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let Some(m) = get_membership(&tx, id.as_str())? else {
                return Err(StoreError::Unavailable(format!("membership {id} vanished")));
            };
            if !matches!(m.status, MembershipStatus::Pending | MembershipStatus::Active) {
                return Ok(Applied::Ended);
            }
            let active = m.status == MembershipStatus::Active;
            let claimed = tx
                .execute(
                    "UPDATE tokens SET membership_id = ?1,
                       status = CASE WHEN ?2 THEN 'used' ELSE status END,
                       used_at = CASE WHEN ?2 THEN ?3 ELSE used_at END
                     WHERE hash = ?4 AND membership_id IS NULL",
                    params![id.as_str(), active, ts(now), hash.as_str()],
                )
                .map_err(fault)?;
            if claimed == 0 {
                return already(&tx, hash);
            }
            let days = get_token(&tx, hash.as_str())?.map_or(0, |t| t.days);
            if active {
                bump(&tx, "tokens.used", 1)?;
                bump(&tx, "tokens.pending", -1)?;
                let end = extended_end(m.expires_at, now, days);
                tx.execute("UPDATE memberships SET expires_at = ?1 WHERE id = ?2", params![ts(end), id.as_str()])
                    .map_err(fault)?;
            } else {
                tx.execute(
                    "UPDATE memberships SET pending_days = pending_days + ?1 WHERE id = ?2",
                    params![days, id.as_str()],
                )
                .map_err(fault)?;
            }
            let updated =
                get_membership(&tx, id.as_str())?.ok_or(StoreError::Unavailable("membership vanished".into()))?;
            tx.commit().map_err(fault)?;
            Ok(Applied::Now(Box::new(updated)))
        })
    }

    async fn membership(&self, id: &MembershipId) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| get_membership(conn, id.as_str()))
    }

    async fn current_membership(&self, account: TelegramUserId) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "SELECT * FROM memberships WHERE telegram_user_id = ?1 AND status IN ('pending', 'active')
                 ORDER BY id DESC LIMIT 1",
                [account.get()],
                membership_from,
            )
            .optional()
            .map_err(fault)
        })
    }

    async fn membership_by_invite(&self, link: &str) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT * FROM memberships WHERE invite_link = ?1", [link], membership_from)
                .optional()
                .map_err(fault)
        })
    }

    async fn memberships_of(&self, user: &UserId) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            let mut stmt =
                conn.prepare("SELECT * FROM memberships WHERE user_id = ?1 ORDER BY id DESC").map_err(fault)?;
            let rows = stmt.query_map([user.as_str()], membership_from).map_err(fault)?;
            rows.collect::<Result<_, _>>().map_err(fault)
        })
    }

    async fn set_invite(&self, id: &MembershipId, link: &str, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            tx.execute(
                "UPDATE memberships SET invite_link = ?1, invite_expires_at = ?2 WHERE id = ?3",
                params![link, ts(expires_at), id.as_str()],
            )
            .map_err(fault)?;
            bump(&tx, "invites.total", 1)?;
            tx.commit().map_err(fault)
        })
    }

    async fn activate_membership(
        &self,
        id: &MembershipId,
        now: DateTime<Utc>,
        username: Option<&str>,
    ) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let Some(m) = get_membership(&tx, id.as_str())?.filter(|m| m.status == MembershipStatus::Pending) else {
                return Ok(None);
            };
            let end = now + Duration::days(i64::from(m.pending_days));
            tx.execute(
                "UPDATE memberships SET status = 'active', joined_at = ?1, expires_at = ?2, pending_days = 0, in_channel = 1,
                   telegram_username = COALESCE(?3, telegram_username)
                 WHERE id = ?4",
                params![ts(now), ts(end), username, id.as_str()],
            )
            .map_err(fault)?;
            let used = tx.execute(
                "UPDATE tokens SET status = 'used', used_at = ?1 WHERE membership_id = ?2 AND status = 'bound'",
                params![ts(now), id.as_str()],
            )
            .map_err(fault)?;
            bump(&tx, "tokens.used", used as i64)?;
            bump(&tx, "tokens.pending", -(used as i64))?;
            bump(&tx, "invites.accepted", 1)?;
            bump(&tx, "members.total", 1)?;
            bump(&tx, "members.active", 1)?;
            bump(&tx, &day_bucket(now), 1)?;
            let updated = get_membership(&tx, id.as_str())?;
            tx.commit().map_err(fault)?;
            Ok(updated)
        })
    }

    async fn set_in_channel(&self, id: &MembershipId, in_channel: bool, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE memberships SET in_channel = ?1, left_at = CASE WHEN ?1 THEN left_at ELSE ?2 END WHERE id = ?3",
                params![in_channel, ts(now), id.as_str()],
            )
            .map(drop)
            .map_err(fault)
        })
    }
}

fn already(conn: &Connection, hash: &TokenHash) -> Result<Applied, StoreError> {
    get_token(conn, hash.as_str())?
        .and_then(|t| t.membership_id)
        .map(Applied::Already)
        .ok_or(StoreError::Unavailable("token vanished".into()))
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn add_notification(&self, n: &Notification) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO notifications (id, user_id, kind, title, message, action_url, created_at, read)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    n.id.as_str(),
                    n.user_id.as_str(),
                    n.kind.as_str(),
                    n.title,
                    n.message,
                    n.action_url,
                    ts(n.created_at),
                    n.read
                ],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn notifications(&self, user: &UserId, page: &PageRequest) -> Result<Page<Notification>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT * FROM notifications WHERE user_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3")
                .map_err(fault)?;
            let rows = stmt
                .query_map(params![user.as_str(), page.after, page.limit + 1], notification_from)
                .map_err(fault)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(fault)?;
            Ok(page_of(rows, page.limit, |n| n.id.to_string()))
        })
    }

    async fn mark_read(&self, user: &UserId, id: &NotificationId) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.execute(
                "UPDATE notifications SET read = 1 WHERE id = ?1 AND user_id = ?2",
                params![id.as_str(), user.as_str()],
            )
            .map(|n| n == 1)
            .map_err(fault)
        })
    }
}

#[async_trait]
impl UpdateLog for SqliteStore {
    async fn claim_update(&self, update_id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO processed_updates (update_id, at) VALUES (?1, ?2)",
                params![update_id, ts(now)],
            )
            .map(|n| n == 1)
            .map_err(fault)
        })
    }

    async fn release_update(&self, update_id: i64) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute("DELETE FROM processed_updates WHERE update_id = ?1", [update_id]).map(drop).map_err(fault)
        })
    }

    async fn claim_effect(&self, key: &str, now: DateTime<Utc>, lease: Duration) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO effects (key, done, lease_until) VALUES (?1, 0, ?2)
                 ON CONFLICT(key) DO UPDATE SET lease_until = excluded.lease_until
                 WHERE effects.done = 0 AND effects.lease_until < ?3",
                params![key, ts(now + lease), ts(now)],
            )
            .map(|n| n == 1)
            .map_err(fault)
        })
    }

    async fn complete_effect(&self, key: &str, _now: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| conn.execute("UPDATE effects SET done = 1 WHERE key = ?1", [key]).map(drop).map_err(fault))
    }

    async fn release_effect(&self, key: &str) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute("DELETE FROM effects WHERE key = ?1 AND done = 0", [key]).map(drop).map_err(fault)
        })
    }
}

fn memberships_where(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Membership>, StoreError> {
    let mut stmt = conn.prepare(sql).map_err(fault)?;
    let rows = stmt.query_map(params, membership_from).map_err(fault)?;
    rows.collect::<Result<_, _>>().map_err(fault)
}

#[async_trait]
impl LifecycleStore for SqliteStore {
    async fn expire_tokens(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let now = ts(now);
            // Memberships opened by a token that expires before the join never start, unless a
            // live token still backs them.
            tx.execute(
                "UPDATE memberships SET status = 'expired', ended_at = ?1, end_reason = 'token expired before joining'
                 WHERE status = 'pending'
                   AND id IN (SELECT membership_id FROM tokens
                              WHERE status = 'bound' AND expires_at <= ?1 AND membership_id IS NOT NULL)
                   AND NOT EXISTS (SELECT 1 FROM tokens t
                                   WHERE t.membership_id = memberships.id AND t.status = 'bound' AND t.expires_at > ?1)",
                [&now],
            )
            .map_err(fault)?;
            let expired = tx
                .execute(
                    "UPDATE tokens SET status = 'expired' WHERE status IN ('pending', 'bound') AND expires_at <= ?1",
                    [&now],
                )
                .map_err(fault)?;
            bump(&tx, "tokens.pending", -(expired as i64))?;
            tx.commit().map_err(fault)?;
            Ok(expired as u64)
        })
    }

    async fn due_memberships(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            memberships_where(
                conn,
                "SELECT * FROM memberships WHERE status = 'active' AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2",
                params![ts(now), limit],
            )
        })
    }

    async fn expire_membership(&self, id: &MembershipId, now: DateTime<Utc>) -> Result<Option<Membership>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let changed = tx
                .execute(
                    "UPDATE memberships SET status = 'expired', ended_at = ?1, end_reason = 'subscription ended', in_channel = 0
                     WHERE id = ?2 AND status = 'active' AND expires_at <= ?1",
                    params![ts(now), id.as_str()],
                )
                .map_err(fault)?;
            if changed == 0 {
                return Ok(None);
            }
            bump(&tx, "members.active", -1)?;
            let m = get_membership(&tx, id.as_str())?;
            tx.commit().map_err(fault)?;
            Ok(m)
        })
    }

    async fn ending_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            memberships_where(
                conn,
                "SELECT * FROM memberships WHERE status = 'active' AND expires_at > ?1 AND expires_at <= ?2
                 ORDER BY expires_at LIMIT ?3",
                params![ts(from), ts(until), limit],
            )
        })
    }

    async fn claim_warning(
        &self,
        id: &MembershipId,
        threshold_days: u32,
        period_end: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO warnings (membership_id, threshold, period_end) VALUES (?1, ?2, ?3)",
                params![id.as_str(), threshold_days, ts(period_end)],
            )
            .map(|n| n == 1)
            .map_err(fault)
        })
    }

    async fn delete_old_notifications(
        &self,
        read_before: DateTime<Utc>,
        unread_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let read = tx
                .execute("DELETE FROM notifications WHERE read = 1 AND created_at < ?1", [ts(read_before)])
                .map_err(fault)?;
            let unread = tx
                .execute("DELETE FROM notifications WHERE read = 0 AND created_at < ?1", [ts(unread_before)])
                .map_err(fault)?;
            // Stats buckets older than any window that reads them.
            tx.execute(
                "DELETE FROM counters WHERE (name LIKE 'tokens.issued.h%' AND name < ?1)
                    OR (name LIKE 'members.joined.d%' AND name < ?2)",
                params![hour_bucket(read_before), day_bucket(read_before)],
            )
            .map_err(fault)?;
            tx.commit().map_err(fault)?;
            Ok((read + unread) as u64)
        })
    }

    async fn revoke_user(
        &self,
        user: &UserId,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(fault)?;
            let targets = memberships_where(
                &tx,
                "SELECT * FROM memberships WHERE user_id = ?1 AND status IN ('pending', 'active')",
                [user.as_str()],
            )?;
            tx.execute(
                "UPDATE memberships SET status = 'revoked', ended_at = ?1, end_reason = ?2, in_channel = 0
                 WHERE user_id = ?3 AND status IN ('pending', 'active')",
                params![ts(now), reason, user.as_str()],
            )
            .map_err(fault)?;
            let active = targets.iter().filter(|m| m.status == MembershipStatus::Active).count() as i64;
            bump(&tx, "members.active", -active)?;
            let tokens = tx
                .execute(
                    "UPDATE tokens SET status = 'revoked' WHERE user_id = ?1 AND status IN ('pending', 'bound')",
                    [user.as_str()],
                )
                .map_err(fault)?;
            bump(&tx, "tokens.pending", -(tokens as i64))?;
            let mut revoked = Vec::with_capacity(targets.len());
            for m in &targets {
                if let Some(r) = get_membership(&tx, m.id.as_str())? {
                    revoked.push(r);
                }
            }
            tx.commit().map_err(fault)?;
            Ok(revoked)
        })
    }

    async fn counters(&self, now: DateTime<Utc>) -> Result<Counters, StoreError> {
        self.with(|conn| {
            let hours: Vec<String> = (0..24).map(|h| hour_bucket(now - Duration::hours(h))).collect();
            let days: Vec<String> = (0..7).map(|d| day_bucket(now - Duration::days(d))).collect();
            let mut stmt = conn.prepare("SELECT value FROM counters WHERE name = ?1").map_err(fault)?;
            let mut get = |name: &str| -> Result<i64, StoreError> {
                stmt.query_row([name], |r| r.get::<_, i64>(0)).optional().map(|v| v.unwrap_or(0)).map_err(fault)
            };
            let mut sum = |names: &[String]| -> Result<i64, StoreError> {
                let mut total = 0;
                for n in names {
                    total += get(n)?;
                }
                Ok(total)
            };
            let tokens_recent = sum(&hours)?;
            let members_recent_joins = sum(&days)?;
            Ok(Counters {
                tokens_total: get("tokens.total")?,
                tokens_pending: get("tokens.pending")?,
                tokens_used: get("tokens.used")?,
                tokens_recent,
                invites_total: get("invites.total")?,
                invites_accepted: get("invites.accepted")?,
                members_total: get("members.total")?,
                members_active: get("members.active")?,
                members_recent_joins,
            })
        })
    }

    async fn ended_since(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            memberships_where(
                conn,
                "SELECT * FROM memberships WHERE ended_at >= ?1 AND status IN ('expired', 'revoked')
                 ORDER BY ended_at DESC LIMIT ?2",
                params![ts(since), limit],
            )
        })
    }

    async fn active_in_channel(&self, limit: u32) -> Result<Vec<Membership>, StoreError> {
        self.with(|conn| {
            memberships_where(
                conn,
                "SELECT * FROM memberships WHERE status = 'active' AND in_channel = 1 ORDER BY expires_at LIMIT ?1",
                params![limit],
            )
        })
    }

    async fn last_job_run(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT at FROM job_runs WHERE job = ?1", [job], |r| time(r, "at")).optional().map_err(fault)
        })
    }

    async fn record_job_run(&self, job: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO job_runs (job, at) VALUES (?1, ?2) ON CONFLICT(job) DO UPDATE SET at = excluded.at",
                params![job, ts(at)],
            )
            .map(drop)
            .map_err(fault)
        })
    }
}

fn audit_from(row: &Row) -> rusqlite::Result<AuditEntry> {
    let user: Option<String> = row.get("user_id")?;
    let tg: Option<i64> = row.get("telegram_user_id")?;
    let details: String = row.get("details")?;
    Ok(AuditEntry {
        id: parsed("id", AuditId::parse(&row.get::<_, String>("id")?))?,
        at: time(row, "at")?,
        actor: row.get("actor")?,
        action: parsed("action", AuditAction::parse(&row.get::<_, String>("action")?))?,
        user_id: user.map(|u| parsed("user_id", UserId::parse(&u))).transpose()?,
        telegram_user_id: tg.map(|t| parsed("telegram_user_id", TelegramUserId::parse(t))).transpose()?,
        details: parsed("details", serde_json::from_str(&details))?,
    })
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO audit (id, at, actor, action, user_id, telegram_user_id, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    e.id.as_str(),
                    ts(e.at),
                    e.actor,
                    e.action.as_str(),
                    e.user_id.as_ref().map(UserId::as_str),
                    e.telegram_user_id.map(TelegramUserId::get),
                    e.details.to_string(),
                ],
            )
            .map(drop)
            .map_err(fault)
        })
    }

    async fn audit(&self, user: Option<&UserId>, page: &PageRequest) -> Result<Page<AuditEntry>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT * FROM audit WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR id < ?2)
                     ORDER BY id DESC LIMIT ?3",
                )
                .map_err(fault)?;
            let rows = stmt
                .query_map(params![user.map(UserId::as_str), page.after, page.limit + 1], audit_from)
                .map_err(fault)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(fault)?;
            Ok(page_of(rows, page.limit, |e| e.id.to_string()))
        })
    }
}

#[async_trait]
impl RateLimits for SqliteStore {
    async fn hit(&self, key: &str, until: DateTime<Utc>) -> Result<u32, StoreError> {
        self.with(|conn| {
            conn.query_row(
                "INSERT INTO rate_limits (key, count, until) VALUES (?1, 1, ?2)
                 ON CONFLICT(key) DO UPDATE SET count = count + 1 RETURNING count",
                params![key, ts(until)],
                |r| r.get(0),
            )
            .map_err(fault)
        })
    }

    async fn hits(&self, key: &str, now: DateTime<Utc>) -> Result<u32, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT count FROM rate_limits WHERE key = ?1 AND until > ?2", params![key, ts(now)], |r| {
                r.get(0)
            })
            .optional()
            .map(|c| c.unwrap_or(0))
            .map_err(fault)
        })
    }
}
