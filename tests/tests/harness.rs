//! The harness itself: what every other integration test relies on.

use filegc_tests::{cluster, Cluster, Engine};

fn database_exists(client: &mut postgres::Client, name: &str) -> bool {
    client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .unwrap()
        .get(0)
}

#[test]
fn databases_do_not_see_each_other() {
    let first = cluster().create_plain_database();
    let second = cluster().create_plain_database();
    assert_ne!(first.name(), second.name());

    first
        .connect()
        .batch_execute("CREATE TABLE only_here (x int); INSERT INTO only_here VALUES (1)")
        .unwrap();

    let mut other = second.connect();
    let table: Option<String> = other
        .query_one("SELECT to_regclass('only_here')::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(table, None);
    let database: String = other
        .query_one("SELECT current_database()", &[])
        .unwrap()
        .get(0);
    assert_eq!(database, second.name());
}

#[test]
fn create_database_installs_the_engine_the_environment_names() {
    let db = cluster().create_database();
    let row = db
        .connect()
        .query_one("SELECT engine, version FROM filegc.version()", &[])
        .unwrap();
    let expected = match Engine::from_env() {
        Engine::Extension => "extension",
        Engine::Portable => "portable",
    };
    assert_eq!(row.get::<_, String>(0), expected);
    assert!(!row.get::<_, String>(1).is_empty());
}

#[test]
fn create_plain_database_has_no_extension() {
    let db = cluster().create_plain_database();
    let rows = db
        .connect()
        .query("SELECT 1 FROM pg_extension WHERE extname = 'filegc'", &[])
        .unwrap();
    assert!(rows.is_empty());
}

#[test]
fn major_version_is_the_servers() {
    let db = cluster().create_plain_database();
    let version_num: i32 = db
        .connect()
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .unwrap()
        .get(0);
    assert_eq!(version_num as u32 / 10_000, cluster().major_version());
    assert!(cluster().bin_dir().join("pg_ctl").is_file());
}

#[test]
fn a_dropped_test_db_is_gone_from_the_server() {
    let observer = cluster().create_plain_database();
    let db = cluster().create_plain_database();
    let name = db.name().to_owned();
    // An open session must not keep the database alive: the drop forces it out.
    let _session = db.connect();
    let mut client = observer.connect();
    assert!(database_exists(&mut client, &name));

    drop(db);

    assert!(!database_exists(&mut client, &name));
}

#[test]
fn app_schema_can_be_created_in_parallel_databases_and_used_by_app() {
    let dbs: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let db = cluster().create_plain_database();
                    db.create_app_schema();
                    db
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    for db in &dbs {
        let mut app = db.connect_as("app");
        let id: i64 = app
            .query_one(
                "INSERT INTO generations (user_id, output_image_path) VALUES (7, 'a/b.png') RETURNING id",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(id, 1);
        app.execute(
            "INSERT INTO facial_evaluations (user_id, image_path) VALUES (7, 'c.png')",
            &[],
        )
        .unwrap();
        assert!(app
            .batch_execute("CREATE TABLE not_allowed (x int)")
            .is_err());
    }
}

#[test]
fn a_private_cluster_survives_an_immediate_restart() {
    let private = Cluster::start_private();
    assert_ne!(private.port(), cluster().port());
    let db = private.create_plain_database();
    db.connect()
        .batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        .unwrap();
    let port = private.port();

    private.restart("immediate");

    assert_eq!(private.port(), port);
    let kept: i32 = db
        .connect()
        .query_one("SELECT x FROM kept", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 42);
}

#[test]
fn a_stopped_private_cluster_refuses_connections_until_started() {
    let private = Cluster::start_private();
    let db = private.create_plain_database();

    private.stop("fast");
    assert!(postgres::Client::connect(&db.url(), postgres::NoTls).is_err());

    private.start();
    let one: i32 = db.connect().query_one("SELECT 1", &[]).unwrap().get(0);
    assert_eq!(one, 1);
}
