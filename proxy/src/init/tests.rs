use super::ports::{PortRange, multiport_batches, parse_list};
use super::rules::{cleanup_script, install_script, installed};
use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: InitArgs,
}

fn args(flags: &[&str]) -> InitArgs {
    let mut argv = vec!["init"];
    argv.extend_from_slice(flags);
    Cli::try_parse_from(argv).unwrap().args
}

#[test]
fn port_lists_take_ports_and_ranges_and_refuse_anything_else() {
    assert_eq!(
        parse_list(" 25, 5000-5010 ,,3306").unwrap(),
        vec![PortRange::single(25), PortRange { low: 5000, high: 5010 }, PortRange::single(3306)]
    );
    for bad in ["http", "70000", "10-5", "1-", "-1"] {
        assert!(parse_list(bad).is_err(), "{bad} must be refused");
    }
}

/// A single port weighs 1 and a range 2; a rule holds at most 15.
#[test]
fn multiport_batches_stay_within_fifteen_ports() {
    let ports: Vec<PortRange> = (1..=14).map(PortRange::single).chain([PortRange { low: 100, high: 200 }]).collect();
    assert_eq!(multiport_batches(&ports), vec!["1,2,3,4,5,6,7,8,9,10,11,12,13,14".to_string(), "100:200".to_string()]);
    assert!(multiport_batches(&[]).is_empty());
}

#[test]
fn install_script_follows_linkerds_order() {
    let plan = plan(&args(&[
        "--skip-inbound-ports",
        "9999",
        "--skip-outbound-ports",
        "5432",
        "--skip-subnets",
        "10.9.0.0/16",
    ]))
    .unwrap();
    let script = install_script(&plan, "");
    let lines: Vec<&str> = script.lines().collect();
    let expected = [
        "*nat",
        ":PROXY_INIT_REDIRECT - [0:0]",
        ":PROXY_INIT_OUTPUT - [0:0]",
        "-A PROXY_INIT_REDIRECT -p tcp -m multiport --dports 4191,9999 -m comment --comment \"proxy-init/ignore-port-4191,9999\" -j RETURN",
        "-A PROXY_INIT_REDIRECT -s 10.9.0.0/16 -m comment --comment \"proxy-init/ignore-subnet-10.9.0.0/16\" -j RETURN",
        "-A PROXY_INIT_REDIRECT -p tcp -m comment --comment \"proxy-init/redirect-all-incoming-to-proxy-port\" -j REDIRECT --to-ports 4143",
        "-A PREROUTING -m comment --comment \"proxy-init/install-proxy-init-prerouting\" -j PROXY_INIT_REDIRECT",
        "-A PROXY_INIT_OUTPUT -m owner --uid-owner 2102 -m comment --comment \"proxy-init/ignore-proxy-user-id\" -j RETURN",
        "-A PROXY_INIT_OUTPUT -o lo -m comment --comment \"proxy-init/ignore-loopback\" -j RETURN",
        "-A PROXY_INIT_OUTPUT -p tcp -m multiport --dports 5432 -m comment --comment \"proxy-init/ignore-port-5432\" -j RETURN",
        "-A PROXY_INIT_OUTPUT -p tcp -m comment --comment \"proxy-init/redirect-all-outgoing-to-proxy-port\" -j REDIRECT --to-ports 4140",
        "-A OUTPUT -m comment --comment \"proxy-init/install-proxy-init-output\" -j PROXY_INIT_OUTPUT",
        "COMMIT",
    ];
    assert_eq!(lines, expected);
}

const SAVED: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:PROXY_INIT_OUTPUT - [0:0]\n:PROXY_INIT_REDIRECT - [0:0]\n-A PREROUTING -m comment --comment \"proxy-init/install-proxy-init-prerouting\" -j PROXY_INIT_REDIRECT\n-A OUTPUT -m comment --comment \"proxy-init/install-proxy-init-output\" -j PROXY_INIT_OUTPUT\n-A PROXY_INIT_OUTPUT -o lo -j RETURN\nCOMMIT\n";

#[test]
fn a_second_install_refills_the_chains_without_a_second_jump() {
    let script = install_script(&plan(&args(&[])).unwrap(), SAVED);
    assert!(installed(SAVED));
    assert!(!script.contains("-A PREROUTING") && !script.contains("-A OUTPUT"), "{script}");
    assert!(script.contains(":PROXY_INIT_REDIRECT - [0:0]"), "declaring the chain flushes it");
}

#[test]
fn cleanup_deletes_jumps_then_chains_and_is_a_no_op_when_nothing_is_there() {
    let script = cleanup_script(SAVED).unwrap();
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(
        lines,
        [
            "*nat",
            "-D PREROUTING -m comment --comment \"proxy-init/install-proxy-init-prerouting\" -j PROXY_INIT_REDIRECT",
            "-D OUTPUT -m comment --comment \"proxy-init/install-proxy-init-output\" -j PROXY_INIT_OUTPUT",
            "-F PROXY_INIT_REDIRECT",
            "-F PROXY_INIT_OUTPUT",
            "-X PROXY_INIT_REDIRECT",
            "-X PROXY_INIT_OUTPUT",
            "COMMIT",
        ]
    );
    assert_eq!(cleanup_script("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"), None);
}

#[test]
fn invalid_flags_are_refused_before_anything_runs() {
    for flags in [
        &["--proxy-uid", "0"][..],
        &["--skip-outbound-ports", "mysql"],
        &["--skip-subnets", "10.0.0.0/33"],
        &["--skip-subnets", "fd00::/8"],
        &["--inbound-port", "4140"],
    ] {
        assert!(matches!(plan(&args(flags)), Err(InitError::InvalidFlag(_))), "{flags:?}");
    }
}

#[test]
fn capability_masks_are_read_from_proc_status() {
    assert_eq!(backend::effective_caps("Name:\tx\nCapEff:\t0000000000001000\n"), Some(0x1000));
    assert_eq!(backend::effective_caps("Name:\tx\n"), None);
}
