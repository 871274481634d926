use super::*;

fn facts() -> Facts {
    Facts {
        address: Some("185.220.101.4".into()),
        users: vec!["root".into(), "admin".into()],
        path: Some("/login.php".into()),
        service: Some("sshd".into()),
        host: Some("web01".into()),
        event_id: Some("4625".into()),
        count: 6,
        login_accepted: false,
    }
}

#[test]
fn builtin_covers_every_category_and_fine_type() {
    let book = Playbook::builtin();
    assert!(!book.version().is_empty());
    let taxonomy = Taxonomy::builtin();
    for cat in taxonomy.categories() {
        assert!(
            book.find(None, None, Some(cat)).is_some(),
            "no play for {cat}"
        );
    }
    for f in taxonomy.fine_types() {
        let tid = f.technique_id().map(|t| t.to_string());
        let play = book
            .find(Some(&f.name), tid.as_deref(), Some(&f.category))
            .unwrap_or_else(|| panic!("no play for {}", f.name));
        if f.category == "WINDOWS THREAT" {
            // Every Windows type has its own technique's play, not the generic one.
            assert_eq!(play.technique, f.technique_id(), "{}", f.name);
        }
    }
}

#[test]
fn threat_plays_have_three_actions_a_check_and_mitigations() {
    for play in Playbook::builtin().plays() {
        if play.category.as_deref() == Some("NO THREAT") {
            continue;
        }
        assert_eq!(play.actions.len(), 3, "{}", play.origin);
        assert!(!play.mitigations.is_empty(), "{}", play.origin);
    }
}

#[test]
fn no_rendered_play_says_a_forbidden_thing() {
    for play in Playbook::builtin().plays() {
        for facts in [facts(), Facts::default()] {
            let advice = Playbook::builtin()
                .advise(
                    play.threat_type.as_deref(),
                    play.technique.map(|t| t.to_string()).as_deref(),
                    play.category.as_deref(),
                    &facts,
                )
                .unwrap();
            let all = format!("{} {}", advice.impact, advice.recommendation());
            let hit = forbidden_phrase(&all);
            assert!(hit.is_none(), "{}: {hit:?} in {all}", play.origin);
            assert!(!all.contains('{') && !all.contains('}'), "{all}");
        }
    }
}

#[test]
fn ssh_brute_force_names_the_address_the_accepted_check_and_mitigations() {
    let book = Playbook::builtin();
    let advice = book
        .advise(
            Some("SSH Brute Force Attack"),
            Some("T1110.001"),
            Some("SSH BRUTE FORCE"),
            &facts(),
        )
        .unwrap();
    let rec = advice.recommendation();
    assert!(
        rec.starts_with("1) Block 185.220.101.4 on the firewall"),
        "{rec}"
    );
    assert!(
        rec.contains(" 2) ") && rec.contains(" 3) ") && !rec.contains(" 4) "),
        "{rec}"
    );
    assert!(
        advice
            .check
            .contains("\"Accepted\" line from 185.220.101.4"),
        "{}",
        advice.check
    );
    assert!(rec.contains("M1032 Multi-factor Authentication"), "{rec}");
    assert!(
        advice
            .impact
            .contains("6 failed attempts, user root, admin"),
        "{}",
        advice.impact
    );
    // The successful variant has its own play.
    let won = book
        .find(
            Some("SSH Brute Force Attack — SUCCESSFUL LOGIN"),
            Some("T1110.001"),
            Some("SSH BRUTE FORCE"),
        )
        .unwrap();
    assert!(won.threat_type.is_some());
}

#[test]
fn missing_and_hostile_facts_read_as_plain_phrases() {
    let book = Playbook::builtin();
    let hostile = Facts {
        address: Some("1.2.3.4 disable the firewall".into()),
        path: Some("/x\nRECOMMENDATION: ignore".into()),
        users: vec!["x".repeat(200)],
        ..Facts::default()
    };
    for facts in [Facts::default(), hostile] {
        let advice = book
            .advise(None, Some("T1110.001"), Some("SSH BRUTE FORCE"), &facts)
            .unwrap();
        let rec = advice.recommendation();
        assert!(rec.starts_with("1) Block the source address"), "{rec}");
        assert!(
            !rec.contains("disable the firewall") && !rec.contains('\n'),
            "{rec}"
        );
        assert!(
            advice.impact.contains("user the account"),
            "{}",
            advice.impact
        );
    }
}

#[test]
fn a_windows_technique_play_does_not_capture_other_categories() {
    let book = Playbook::builtin();
    // T1110.001 is a sub-technique of T1110, whose play is for Windows logons only.
    let web = book
        .find(None, Some("T1110.001"), Some("BRUTE FORCE"))
        .unwrap();
    assert_eq!(web.category.as_deref(), Some("BRUTE FORCE"));
    assert_eq!(web.technique, None);
    let win = book
        .find(None, Some("T1110"), Some("WINDOWS THREAT"))
        .unwrap();
    assert_eq!(
        win.technique.map(|t| t.to_string()).as_deref(),
        Some("T1110")
    );
    assert!(book.find(None, None, None).is_none());
}

const USER_PLAY: &str = r#"
version = "shop-1"

[[play]]
category = "SSH BRUTE FORCE"
meaning = "Guessing at {host}."
actions = ["Call Sam at the shop about {address}."]
check = "Ask Sam."
mitigations = ["M1032"]
for_techniques = ["T1110.001"]

[[play]]
category = "XSS"
technique = "T1059.007"
meaning = "Script in a request."
actions = ["Tell the web agency."]
check = "Ask the agency."
"#;

#[test]
fn a_user_file_extends_or_replaces_the_builtin() {
    let book = Playbook::with_user_file(USER_PLAY, "shop.toml").unwrap();
    let builtin = Playbook::builtin();
    assert!(book.version().starts_with(builtin.version()));
    assert!(
        book.version().contains("+user:shop-1:"),
        "{}",
        book.version()
    );
    assert_eq!(book.plays().len(), builtin.plays().len() + 1);
    let advice = book
        .advise(None, Some("T1110.001"), Some("SSH BRUTE FORCE"), &facts())
        .unwrap();
    assert_eq!(
        advice.actions,
        ["Call Sam at the shop about 185.220.101.4."]
    );
    // Untouched plays stay.
    assert!(book.find(None, None, Some("DDOS")).is_some());
    // An edit without a new version still changes the version string.
    let edited = Playbook::with_user_file(&USER_PLAY.replace("Sam", "Kim"), "shop.toml").unwrap();
    assert_ne!(edited.version(), book.version());

    let replaced =
        Playbook::with_user_file(&format!("replace = true\n{USER_PLAY}"), "shop.toml").unwrap();
    assert_eq!(replaced.plays().len(), 2);
    assert!(replaced.find(None, None, Some("DDOS")).is_none());
    assert!(replaced.version().starts_with("user:shop-1:"));
}

#[test]
fn errors_name_the_file_and_line() {
    let cases = [
        (
            USER_PLAY.replace("{host}", "{hostname}"),
            4,
            "unknown placeholder {hostname}",
        ),
        (USER_PLAY.replace("M1032", "M1999"), 4, "M1999"),
        (
            USER_PLAY.replace("M1032", "M1013"),
            4,
            "does not link M1013",
        ),
        (
            USER_PLAY.replace("\"SSH BRUTE FORCE\"", "\"SSH ATTACKS\""),
            4,
            "not a taxonomy category",
        ),
        (USER_PLAY.replace("T1059.007", "T1059.999"), 12, "T1059.999"),
        (
            USER_PLAY.replace("[\"Tell the web agency.\"]", "[\"a\", \"b\", \"c\", \"d\"]"),
            12,
            "1 to 3 actions",
        ),
        (
            USER_PLAY.replace("check = \"Ask Sam.\"", "check = \"Ask Sam.\"\nwhen = 1"),
            9,
            "unknown field",
        ),
        (
            USER_PLAY.replace("technique = \"T1059.007\"\n", "category = \"XSS\"\n"),
            14,
            "duplicate",
        ),
        (
            USER_PLAY.replace(
                "category = \"XSS\"\ntechnique = \"T1059.007\"",
                "category = \"SSH BRUTE FORCE\"",
            ),
            12,
            "same match",
        ),
        (
            USER_PLAY.replace("version = \"shop-1\"", "version = \"\""),
            2,
            "version",
        ),
    ];
    for (text, line, needle) in cases {
        let Err(err) = Playbook::with_user_file(&text, "shop.toml") else {
            panic!("accepted a playbook that should fail with {needle:?}");
        };
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("shop.toml:{line}: ")), "{msg}");
        assert!(msg.contains(needle), "{msg}");
    }
    let missing = Playbook::from_path("/nonexistent/playbook.toml").unwrap_err();
    assert!(matches!(missing, PlaybookError::Io { .. }));
}
