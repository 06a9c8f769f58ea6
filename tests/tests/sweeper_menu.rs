//! The interactive menu, driven through a pseudo-terminal made by util-linux `script`.

use filegc_tests::sweeper::stderr;
use filegc_tests::test_env::TestEnv;

#[test]
fn the_menu_lists_deletes_orphans_on_yes_and_exits() {
    let mut env = TestEnv::new();
    env.write_aged("user_1_1700000000.jpg", 1_000, 100);
    env.write_aged("user_2_1700000000.png", 2_000, 100);
    env.reference("user_1_1700000000.jpg");
    // One orphan of two images is past the default breaker limit (a quarter); raise it.
    env.set("max_delete_fraction", "1");
    let output = env.run_on_terminal(&[], b"1\n4\nyes\n7\n");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{screen}\n{}", stderr(&output));
    assert!(screen.contains("Available actions"), "{screen}");
    assert!(
        screen.contains("user_1_1700000000.jpg"),
        "entry 1 lists: {screen}"
    );
    assert!(screen.contains("Goodbye"), "{screen}");
    assert!(
        !env.path("user_2_1700000000.png").exists(),
        "entry 4 deleted the orphan"
    );
    assert!(env.path("user_1_1700000000.jpg").is_file());
    assert_eq!(
        env.outcome("user_2_1700000000.png").as_deref(),
        Some("trashed")
    );
}
