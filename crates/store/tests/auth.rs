//! The auth queries (users, sessions, API tokens, audit log, account owners)
//! against a real SQLite file and a real PostgreSQL database.
//!
//! PostgreSQL comes from `TRADECORE_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). Each test gets a database
//! of its own, dropped at the end.

use model::{Currency, Timestamp};
use store::Store;
use store::auth::{AuditEntry, NewSession, NewToken, NewUser, Role, Scope, Scopes, UserChange, UserRow, UserUpdate};
use store::testing::TestDatabase;

/// A fresh store of the named backend.
struct TestDb {
    store: Store,
    db: TestDatabase,
}

impl TestDb {
    async fn new(backend: &str) -> Self {
        let db = TestDatabase::create(backend, "auth_store").await;
        Self { store: db.store().await, db }
    }

    async fn drop_db(self) {
        self.store.close().await;
        self.db.remove().await;
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::TestDb::new("sqlite").await;
                    super::$name(&db.store).await;
                    db.drop_db().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = super::TestDb::new("postgres").await;
                    super::$name(&db.store).await;
                    db.drop_db().await;
                }
            )*
        }
    };
}

both_backends!(
    users_are_unique_ignoring_case_and_audited,
    user_updates_keep_an_admin_and_end_sessions,
    sessions_are_scoped_to_their_user,
    password_change_ends_other_sessions,
    tokens_are_found_by_hash_and_revoked_by_owner_only,
    audit_log_pages_newest_first,
    account_owners_link_accounts_to_users,
    a_failed_audit_write_rolls_back_the_change,
);

fn t(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + secs)
}

fn audit(action: &str) -> AuditEntry<'_> {
    AuditEntry::new(t(0), None, action, Some("192.0.2.1"))
}

async fn user(store: &Store, name: &str, role: Role) -> UserRow {
    let new = NewUser {
        username: name,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
        role,
        password_change_required: false,
        created: t(0),
    };
    store.create_user(&new, &audit("user.create")).await.unwrap().unwrap()
}

fn session<'a>(id: &'a str, user_id: i64, expires: i64) -> NewSession<'a> {
    NewSession {
        id,
        user_id,
        csrf_token: "csrf",
        created: t(0),
        expires: t(expires),
        user_agent: Some("test"),
        ip: Some("192.0.2.1"),
    }
}

async fn users_are_unique_ignoring_case_and_audited(store: &Store) {
    assert_eq!(store.user_count().await.unwrap(), 0);
    let alice = user(store, "Alice", Role::Trader).await;
    assert_eq!((alice.username.as_str(), alice.role, alice.disabled), ("Alice", Role::Trader, false));

    let again = NewUser {
        username: "aLiCe",
        password_hash: "x",
        role: Role::Admin,
        password_change_required: false,
        created: t(1),
    };
    assert_eq!(store.create_user(&again, &audit("user.create")).await.unwrap(), None, "same name, other case");

    assert_eq!(store.user_by_name("ALICE").await.unwrap().map(|u| u.id), Some(alice.id));
    assert_eq!(store.user_by_name("bob").await.unwrap(), None);
    assert_eq!(store.user(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(store.user(alice.id + 100).await.unwrap(), None);

    let bob = user(store, "bob", Role::Viewer).await;
    let names: Vec<String> = store.users().await.unwrap().into_iter().map(|u| u.username).collect();
    assert_eq!(names, ["Alice", "bob"]);
    assert_eq!(store.user_count().await.unwrap(), 2);

    // One record per created user (the refused duplicate wrote none), naming the new row.
    let log = store.audit_log(None, 10).await.unwrap();
    let targets: Vec<Option<String>> = log.iter().map(|a| a.target.clone()).collect();
    assert_eq!(targets, [Some(format!("user:{}", bob.id)), Some(format!("user:{}", alice.id))]);
    assert!(log.iter().all(|a| a.action == "user.create" && a.ip.as_deref() == Some("192.0.2.1")));
    // The hash never reaches Debug output.
    assert!(!format!("{alice:?}").contains("argon2"));
}

async fn user_updates_keep_an_admin_and_end_sessions(store: &Store) {
    let root = user(store, "root", Role::Admin).await;
    let carol = user(store, "carol", Role::Viewer).await;

    let change = UserChange { role: Some(Role::Trader), disabled: None };
    let UserUpdate::Updated(updated) = store.update_user(carol.id, change, &audit("user.update")).await.unwrap() else {
        panic!("carol should be updated");
    };
    assert_eq!((updated.role, updated.disabled), (Role::Trader, false));

    // Disabling ends the user's sessions at once.
    store.create_session(&session("s-carol", carol.id, 100), &audit("auth.login")).await.unwrap();
    let disable = UserChange { role: None, disabled: Some(true) };
    let UserUpdate::Updated(updated) = store.update_user(carol.id, disable, &audit("user.update")).await.unwrap()
    else {
        panic!("carol should be disabled");
    };
    assert_eq!((updated.role, updated.disabled), (Role::Trader, true));
    assert_eq!(store.session("s-carol").await.unwrap(), None);

    // The only enabled admin can be neither demoted nor disabled; nothing changes.
    let before = store.audit_log(None, 100).await.unwrap().len();
    for change in [UserChange { role: Some(Role::Viewer), disabled: None }, disable] {
        assert_eq!(store.update_user(root.id, change, &audit("user.update")).await.unwrap(), UserUpdate::LastAdmin);
    }
    assert_eq!(store.user(root.id).await.unwrap(), Some(root.clone()));
    assert_eq!(store.audit_log(None, 100).await.unwrap().len(), before, "refused changes are not recorded");

    // With a second admin, the first may step down.
    let promote = UserChange { role: Some(Role::Admin), disabled: Some(false) };
    assert!(matches!(
        store.update_user(carol.id, promote, &audit("user.update")).await.unwrap(),
        UserUpdate::Updated(_)
    ));
    let demote = UserChange { role: Some(Role::Viewer), disabled: None };
    assert!(matches!(store.update_user(root.id, demote, &audit("user.update")).await.unwrap(), UserUpdate::Updated(_)));

    assert_eq!(store.update_user(root.id + 100, demote, &audit("user.update")).await.unwrap(), UserUpdate::NotFound);
}

async fn sessions_are_scoped_to_their_user(store: &Store) {
    let dave = user(store, "dave", Role::Trader).await;
    let erin = user(store, "erin", Role::Trader).await;
    store.create_session(&session("d1", dave.id, 100), &audit("auth.login")).await.unwrap();
    store.create_session(&session("d-old", dave.id, 5), &audit("auth.login")).await.unwrap();
    store.create_session(&session("e1", erin.id, 100), &audit("auth.login")).await.unwrap();

    let (found, owner) = store.session("d1").await.unwrap().unwrap();
    assert_eq!((found.user_id, owner.username.as_str()), (dave.id, "dave"));
    assert_eq!((found.csrf_token.as_str(), found.created, found.last_seen), ("csrf", t(0), t(0)));
    assert_eq!((found.user_agent.as_deref(), found.ip.as_deref()), (Some("test"), Some("192.0.2.1")));

    // Touching within a minute keeps the old time; later it moves.
    store.touch_session("d1", t(30)).await.unwrap();
    assert_eq!(store.session("d1").await.unwrap().unwrap().0.last_seen, t(0));
    store.touch_session("d1", t(61)).await.unwrap();
    assert_eq!(store.session("d1").await.unwrap().unwrap().0.last_seen, t(61));

    let ids: Vec<String> = store.sessions(dave.id, t(10)).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["d1"], "expired sessions are not listed");

    // Erin cannot end Dave's session; Dave can.
    assert!(!store.delete_session(erin.id, "d1", &audit("auth.session_revoke")).await.unwrap());
    assert!(store.session("d1").await.unwrap().is_some());
    assert!(store.delete_session(dave.id, "d1", &audit("auth.session_revoke")).await.unwrap());
    assert_eq!(store.session("d1").await.unwrap(), None);

    assert_eq!(store.delete_expired_sessions(t(10)).await.unwrap(), 1);
    assert_eq!(store.session("d-old").await.unwrap(), None);
    assert!(store.session("e1").await.unwrap().is_some());
}

async fn password_change_ends_other_sessions(store: &Store) {
    let frank = user(store, "frank", Role::Trader).await;
    for id in ["f1", "f2", "f3"] {
        store.create_session(&session(id, frank.id, 100), &audit("auth.login")).await.unwrap();
    }
    assert!(store.set_password(frank.id, "new-hash", Some("f2"), &audit("auth.password")).await.unwrap());
    let ids: Vec<String> = store.sessions(frank.id, t(1)).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["f2"]);
    let stored = store.user(frank.id).await.unwrap().unwrap();
    assert_eq!((stored.password_hash.as_str(), stored.password_change_required), ("new-hash", false));

    assert!(store.set_password(frank.id, "newer", None, &audit("auth.password")).await.unwrap());
    assert!(store.sessions(frank.id, t(1)).await.unwrap().is_empty());
    assert!(!store.set_password(frank.id + 100, "x", None, &audit("auth.password")).await.unwrap());
}

async fn tokens_are_found_by_hash_and_revoked_by_owner_only(store: &Store) {
    let gina = user(store, "gina", Role::Trader).await;
    let hank = user(store, "hank", Role::Viewer).await;
    let read = Scopes::NONE.with(Scope::Read);
    let new = NewToken {
        user_id: gina.id,
        name: "bot",
        token_hash: "hash-1",
        scopes: Role::Trader.scopes(),
        created: t(0),
        expires: Some(t(3600)),
    };
    let first = store.create_token(&new, &audit("token.create")).await.unwrap();
    let second = store
        .create_token(&NewToken { token_hash: "hash-2", scopes: read, expires: None, ..new }, &audit("token.create"))
        .await
        .unwrap();
    assert_eq!((first.scopes, first.expires, first.revoked), (Role::Trader.scopes(), Some(t(3600)), None));

    let (found, owner) = store.token_by_hash("hash-2").await.unwrap().unwrap();
    assert_eq!(found, second);
    assert_eq!(owner.id, gina.id);
    assert_eq!(store.token_by_hash("nope").await.unwrap(), None);

    // The same hash twice is refused by the unique index.
    assert!(store.create_token(&new, &audit("token.create")).await.is_err());

    let listed: Vec<i64> = store.tokens(gina.id).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, [second.id, first.id], "newest first");
    assert!(store.tokens(hank.id).await.unwrap().is_empty());

    store.touch_token(first.id, t(100)).await.unwrap();
    store.touch_token(first.id, t(120)).await.unwrap();
    assert_eq!(store.token_by_hash("hash-1").await.unwrap().unwrap().0.last_used, Some(t(100)));

    assert!(!store.revoke_token(hank.id, first.id, t(5), &audit("token.revoke")).await.unwrap(), "not hank's");
    assert_eq!(store.token_by_hash("hash-1").await.unwrap().unwrap().0.revoked, None);
    assert!(store.revoke_token(gina.id, first.id, t(5), &audit("token.revoke")).await.unwrap());
    assert!(store.revoke_token(gina.id, first.id, t(9), &audit("token.revoke")).await.unwrap());
    assert_eq!(store.token_by_hash("hash-1").await.unwrap().unwrap().0.revoked, Some(t(5)), "first time kept");

    let log = store.audit_log(None, 3).await.unwrap();
    assert_eq!(log[0].target, Some(format!("token:{}", first.id)));
    assert_eq!(log[0].action, "token.revoke");
}

async fn audit_log_pages_newest_first(store: &Store) {
    let ivy = user(store, "ivy", Role::Admin).await;
    for i in 0..7 {
        let entry = AuditEntry::new(t(i), Some(ivy.id), "test.step", None)
            .target(format!("step:{i}"))
            .detail(serde_json::json!({ "i": i, "note": "quote \" and ünïcode" }));
        store.record_audit(&entry).await.unwrap();
    }
    let first = store.audit_log(None, 3).await.unwrap();
    assert_eq!(
        first.iter().map(|a| a.target.clone().unwrap_or_default()).collect::<Vec<_>>(),
        ["step:6", "step:5", "step:4"]
    );
    assert_eq!(first[0].detail, serde_json::json!({ "i": 6, "note": "quote \" and ünïcode" }));
    assert_eq!((first[0].user_id, first[0].ts), (Some(ivy.id), t(6)));
    let second = store.audit_log(Some(first[2].id), 3).await.unwrap();
    assert_eq!(
        second.iter().map(|a| a.target.clone().unwrap_or_default()).collect::<Vec<_>>(),
        ["step:3", "step:2", "step:1"]
    );
    let rest = store.audit_log(Some(second[2].id), 3).await.unwrap();
    // step:0, then the user's creation.
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[1].action, "user.create");
    assert!(store.audit_log(Some(rest[1].id), 3).await.unwrap().is_empty());
}

async fn account_owners_link_accounts_to_users(store: &Store) {
    let usd = Currency::parse("USD").unwrap();
    let jack = user(store, "jack", Role::Trader).await;
    let kate = user(store, "kate", Role::Trader).await;
    let a = store.create_account("jack paper", usd, t(0)).await.unwrap();
    let b = store.create_account("kate paper", usd, t(0)).await.unwrap();
    let c = store.create_account("unowned", usd, t(0)).await.unwrap();
    store.set_account_owner(a, jack.id).await.unwrap();
    store.set_account_owner(b, kate.id).await.unwrap();

    assert_eq!(store.account_owner(a).await.unwrap(), Some(jack.id));
    assert_eq!(store.account_owner(c).await.unwrap(), None);
    let jacks: Vec<i64> = store.owned_accounts(jack.id).await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(jacks, [a]);

    // Handing an account over replaces its owner.
    store.set_account_owner(b, jack.id).await.unwrap();
    let jacks: Vec<String> = store.owned_accounts(jack.id).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(jacks, ["jack paper", "kate paper"]);
    assert!(store.owned_accounts(kate.id).await.unwrap().is_empty());

    // An owner must be a user, and an account must exist.
    assert!(store.set_account_owner(c, kate.id + 100).await.is_err());
    assert!(store.set_account_owner(c + 100, kate.id).await.is_err());
}

async fn a_failed_audit_write_rolls_back_the_change(store: &Store) {
    // An audit record naming a user that does not exist breaks its foreign
    // key: the user it was recorded for must not exist either.
    let broken = AuditEntry::new(t(0), Some(999), "user.create", None);
    let new = NewUser {
        username: "lost",
        password_hash: "x",
        role: Role::Viewer,
        password_change_required: true,
        created: t(0),
    };
    assert!(store.create_user(&new, &broken).await.is_err());
    assert_eq!(store.user_by_name("lost").await.unwrap(), None);
    assert!(store.audit_log(None, 10).await.unwrap().is_empty());

    let mia = user(store, "mia", Role::Trader).await;
    store.create_session(&session("m1", mia.id, 100), &audit("auth.login")).await.unwrap();
    assert!(store.set_password(mia.id, "changed", None, &broken).await.is_err());
    assert_eq!(store.user(mia.id).await.unwrap().unwrap().password_hash, mia.password_hash);
    assert!(store.session("m1").await.unwrap().is_some(), "sessions survive the failed change");
}
