//! Composed traffic: benign web requests from the URL structures of common applications,
//! benign Linux system logs, and sshd password-guessing bursts. Composed, not copied: no
//! large real benign log with a permissive licence exists (docs/DATA.md), so the corpus
//! draws real structures (paths, parameters, words, user agents, daemons' messages)
//! with seeded surroundings.

use crate::rng::Rng;
use crate::web::{
    draw_time, encode, private_ip, public_ip, size_for, Encoding, Request, BROWSER_AGENTS,
    CRAWLER_AGENTS, ENDPOINTS, TOOL_AGENTS,
};

/// Ordinary words people search for, with the apostrophes, hyphens and SQL-looking words
/// (select, union, drop, order) that naive filters mistake for attacks.
const SEARCH_TERMS: &[&str] = &[
    "men's running shoes",
    "women's rain jacket",
    "o'reilly rust book",
    "rock-n-roll t-shirt",
    "don't starve together",
    "select comfort mattress",
    "union station parking",
    "drop-in ceiling tiles",
    "order by phone",
    "where to buy a kettle",
    "script writing course",
    "1/2 inch drill bit",
    "children's books age 5-7",
    "king's cross opening hours",
    "100% cotton bed sheets",
    "usb-c to hdmi adapter",
    "tom & jerry dvd",
    "best price 4k tv",
    "where is my order",
    "return policy",
    "gift card balance",
    "it's a wonderful life",
    "l'oréal shampoo",
    "café au lait mug",
    "delete my account",
    "insert coin arcade",
    "table runner 72\"",
    "c++ primer",
    "#1 bestseller",
    "email@example.com",
];

/// Slugs of articles and products.
const SLUGS: &[&str] = &[
    "how-to-clean-a-cast-iron-pan",
    "10-tips-for-remote-work",
    "winter-sale-2025",
    "blue-cotton-shirt",
    "stainless-steel-water-bottle-750ml",
    "release-notes-v2-4",
    "meet-the-team",
    "privacy-policy",
    "shipping-and-returns",
    "why-we-moved-to-rust",
    "garden-hose-reel-50m",
    "kids-bike-16-inch",
];

/// Benign values for the shared endpoints' parameters.
fn benign_value(param: &str, rng: &mut Rng) -> String {
    match param {
        "id" | "t" | "item" | "sku" => rng.range(1, 99_999).to_string(),
        "page" => rng
            .pick(&["home", "about", "contact", "2", "3", "faq", "blog"])
            .to_string(),
        "q" | "s" | "query" | "text" => rng.pick(SEARCH_TERMS).to_string(),
        "filter" => rng
            .pick(&[
                "active",
                "role:admin",
                "created>2025-01-01",
                "name:smith",
                "o'neil",
            ])
            .to_string(),
        "status" => rng
            .pick(&["shipped", "pending", "cancelled", "open"])
            .to_string(),
        "username" => rng
            .pick(&[
                "alice",
                "j.smith",
                "o'connor",
                "maria-luisa",
                "admin",
                "bob_92",
            ])
            .to_string(),
        "email" => rng
            .pick(&[
                "alice@example.com",
                "j.o'brien@example.org",
                "info+shop@example.net",
            ])
            .to_string(),
        "file" | "path" => rng
            .pick(&[
                "report-2025-q3.pdf",
                "manual_v2.pdf",
                "invoice-10442.pdf",
                "images/logo.png",
                "docs/readme.txt",
            ])
            .to_string(),
        "template" => rng
            .pick(&["default", "dark", "print", "mobile"])
            .to_string(),
        "host" | "ip" => rng
            .pick(&[
                "10.0.0.1",
                "www.example.com",
                "192.168.1.20",
                "mail.example.org",
            ])
            .to_string(),
        "name" => rng
            .pick(&["monthly-sales", "q3 summary", "inventory", "year-end 2025"])
            .to_string(),
        "slug" => rng.pick(SLUGS).to_string(),
        "url" => rng
            .pick(&[
                "/account",
                "/checkout/thank-you",
                "https://www.example.com/blog/",
                "/cart",
            ])
            .to_string(),
        "sort" => rng
            .pick(&["price-asc", "price-desc", "newest", "rating"])
            .to_string(),
        _ => rng.range(1, 500).to_string(),
    }
}

/// Application families of composed benign traffic. The validation families are held
/// out whole (docs/DATA.md): their URL structures never appear in training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebFamily {
    WordPress,
    Shop,
    Static,
    Api,
    /// Held out: documentation site, wiki, forum and webmail.
    DocsForum,
}

impl WebFamily {
    pub const TRAIN: [WebFamily; 4] = [
        WebFamily::WordPress,
        WebFamily::Shop,
        WebFamily::Static,
        WebFamily::Api,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WebFamily::WordPress => "wordpress",
            WebFamily::Shop => "shop",
            WebFamily::Static => "static",
            WebFamily::Api => "api",
            WebFamily::DocsForum => "docs-forum",
        }
    }
}

/// Method, target and a typical status of one benign request of `family`.
fn benign_target(family: WebFamily, rng: &mut Rng) -> (&'static str, String, u16) {
    let enc = if rng.chance(60) {
        Encoding::Form
    } else {
        Encoding::Percent
    };
    let q = |rng: &mut Rng| encode(rng.pick::<&str>(SEARCH_TERMS), enc);
    match family {
        WebFamily::WordPress => match rng.below(12) {
            0 => ("GET", "/".into(), 200),
            1 => (
                "GET",
                format!(
                    "/{}/{:02}/{}/",
                    rng.range(2019, 2026),
                    rng.range(1, 12),
                    rng.pick(SLUGS)
                ),
                200,
            ),
            2 => ("GET", format!("/?s={}", q(rng)), 200),
            3 => (
                "GET",
                format!(
                    "/wp-content/themes/twentytwentyfour/style.css?ver={}.{}",
                    rng.range(1, 3),
                    rng.below(9)
                ),
                200,
            ),
            4 => (
                "GET",
                format!(
                    "/wp-includes/js/jquery/jquery.min.js?ver=3.7.{}",
                    rng.below(2)
                ),
                304,
            ),
            5 => ("POST", "/wp-admin/admin-ajax.php".into(), 200),
            6 => (
                "GET",
                format!("/wp-json/wp/v2/posts?per_page=10&page={}", rng.range(1, 9)),
                200,
            ),
            7 => ("GET", "/feed/".into(), 200),
            8 => (
                "GET",
                format!(
                    "/category/{}/page/{}/",
                    rng.pick(&["news", "recipes", "travel", "how-to"]),
                    rng.range(2, 12)
                ),
                200,
            ),
            9 => (
                "GET",
                format!(
                    "/wp-content/uploads/{}/{:02}/IMG_{}-1024x768.jpg",
                    rng.range(2019, 2026),
                    rng.range(1, 12),
                    rng.range(1000, 9999)
                ),
                200,
            ),
            10 => ("GET", "/wp-login.php".into(), 200),
            _ => (
                "GET",
                format!("/{}/#comments", rng.pick(SLUGS)).replace("#comments", ""),
                200,
            ),
        },
        WebFamily::Shop => match rng.below(10) {
            0 => (
                "GET",
                format!("/product/{}/{}", rng.range(100, 99_999), rng.pick(SLUGS)),
                200,
            ),
            1 => ("GET", format!("/search?q={}", q(rng)), 200),
            2 => (
                "GET",
                format!(
                    "/category/{}?sort={}&page={}",
                    rng.pick(&["shoes", "garden", "kids", "kitchen"]),
                    rng.pick(&["price-asc", "newest", "rating"]),
                    rng.range(1, 8)
                ),
                200,
            ),
            3 => ("POST", "/cart/add".into(), 302),
            4 => ("GET", "/checkout".into(), 200),
            5 => (
                "GET",
                format!("/images/products/{}-800x800.jpg", rng.range(100, 99_999)),
                200,
            ),
            6 => (
                "GET",
                format!("/account/orders/{}", rng.range(10_000, 99_999)),
                200,
            ),
            _ => {
                let e = *rng.pick(ENDPOINTS);
                let v = encode(&benign_value(e.param, rng), enc);
                (
                    "GET",
                    format!("{}?{}{}={}", e.path, e.prefix, e.param, v),
                    200,
                )
            }
        },
        WebFamily::Static => match rng.below(8) {
            0 => ("GET", "/favicon.ico".into(), *rng.pick(&[200, 404, 304])),
            1 => ("GET", "/robots.txt".into(), 200),
            2 => ("GET", "/sitemap.xml".into(), 200),
            3 => (
                "GET",
                format!("/assets/app.{:x}.js", rng.next_u64() & 0xff_ffff),
                200,
            ),
            4 => ("GET", "/css/main.css".into(), 304),
            5 => ("GET", "/fonts/inter-var.woff2".into(), 200),
            6 => (
                "GET",
                "/apple-touch-icon.png".into(),
                *rng.pick(&[404, 200]),
            ),
            _ => ("GET", format!("/video/intro-{}.mp4", rng.range(1, 9)), 206),
        },
        WebFamily::Api => match rng.below(8) {
            0 => (
                "GET",
                format!("/api/v1/orders/{}", rng.range(1_000, 99_999)),
                200,
            ),
            1 => ("GET", "/api/v2/users/me".into(), *rng.pick(&[200, 401])),
            2 => ("POST", "/graphql".into(), 200),
            3 => (
                "GET",
                format!(
                    "/api/v1/search?query={}&limit={}",
                    q(rng),
                    rng.pick(&[10, 20, 50])
                ),
                200,
            ),
            4 => ("GET", "/health".into(), 200),
            5 => ("GET", "/metrics".into(), 200),
            6 => (
                "PUT",
                format!("/api/v1/cart/items/{}", rng.range(1, 999)),
                204,
            ),
            _ => (
                "DELETE",
                format!("/api/v1/sessions/{:x}", rng.next_u64() & 0xffff_ffff),
                204,
            ),
        },
        WebFamily::DocsForum => match rng.below(9) {
            0 => (
                "GET",
                format!(
                    "/wiki/{}",
                    rng.pick(&[
                        "Main_Page",
                        "Special:Search",
                        "Help:Contents",
                        "User_talk:O'Brien"
                    ])
                ),
                200,
            ),
            1 => (
                "GET",
                format!(
                    "/docs/{}/{}",
                    rng.pick(&["getting-started", "admin-guide", "api"]),
                    rng.pick(&["install", "configuration", "faq", "upgrade-to-3.0"])
                ),
                200,
            ),
            2 => (
                "GET",
                format!(
                    "/forum/thread/{}-{}?page={}",
                    rng.range(100, 9_999),
                    rng.pick(SLUGS),
                    rng.range(1, 6)
                ),
                200,
            ),
            3 => (
                "GET",
                format!("/t/{}/{}", rng.pick(SLUGS), rng.range(10, 9_999)),
                200,
            ),
            4 => (
                "GET",
                format!(
                    "/download/{}",
                    rng.pick(&["report-2025-q3.pdf", "setup-2.4.1.exe", "slides.pptx"])
                ),
                200,
            ),
            5 => (
                "GET",
                format!(
                    "/user/profile?tab={}",
                    rng.pick(&["settings", "posts", "badges"])
                ),
                200,
            ),
            6 => ("POST", "/owa/service.svc?action=GetItem".into(), 200),
            7 => (
                "GET",
                format!("/search.php?keywords={}&sr=posts", q(rng)),
                200,
            ),
            _ => (
                "GET",
                format!("/static/js/chunk-{:x}.js", rng.next_u64() & 0xfff_ffff),
                304,
            ),
        },
    }
}

/// One benign request of `family`: a browser most of the time, a crawler or a script
/// sometimes; office users from private addresses, visitors from public ones.
pub fn benign_request(family: WebFamily, rng: &mut Rng) -> Request {
    let (method, target, status) = benign_target(family, rng);
    let status = if rng.chance(6) { 404 } else { status };
    let agent = match rng.below(20) {
        0..=14 => rng.pick(BROWSER_AGENTS).to_string(),
        15..=17 => rng.pick(CRAWLER_AGENTS).to_string(),
        _ => rng.pick(TOOL_AGENTS).to_string(),
    };
    let client = if rng.chance(35) {
        private_ip(rng)
    } else {
        public_ip(rng)
    };
    let referer = if rng.chance(45) {
        Some(format!(
            "https://{}/{}",
            rng.pick(&[
                "www.example.com",
                "shop.example.org",
                "www.google.com",
                "duckduckgo.com"
            ]),
            rng.pick(&[
                "",
                "search?q=kettle",
                "blog/",
                "product/1234/blue-cotton-shirt"
            ])
        ))
    } else {
        None
    };
    let user = if rng.chance(8) {
        Some(rng.pick(&["alice", "bob", "jsmith"]).to_string())
    } else {
        None
    };
    Request {
        client,
        method: method.to_owned(),
        target,
        status,
        bytes: size_for(status, rng),
        referer,
        user_agent: agent,
        user,
        time: draw_time(rng),
    }
}

/// A benign request that carries `raw` (a hard benign input: a false positive of a
/// detector) in a search-like parameter.
pub fn hard_benign_request(raw: &str, rng: &mut Rng) -> Request {
    let e = *rng.pick(&[
        ("/search", "q"),
        ("/", "s"),
        ("/catalog/search", "query"),
        ("/comments/post", "text"),
        ("/api/v1/search", "query"),
    ]);
    let mut req = benign_request(WebFamily::Shop, rng);
    let enc = if rng.chance(55) {
        Encoding::Form
    } else {
        Encoding::Percent
    };
    req.target = format!("{}?{}={}", e.0, e.1, encode(raw, enc));
    req.status = if rng.chance(90) { 200 } else { 404 };
    req.bytes = size_for(req.status, rng);
    req.method = "GET".into();
    req
}

/// Hosts and users of composed system logs.
const HOSTS: &[&str] = &[
    "web01",
    "db-2",
    "ip-10-0-1-23",
    "nas",
    "mail",
    "build-agent-3",
    "vpn-gw",
];
const USERS: &[&str] = &[
    "deploy", "alice", "ubuntu", "backup", "git", "jenkins", "maria",
];

fn syslog_stamp(rng: &mut Rng) -> (String, String) {
    let t = draw_time(rng);
    let (_, mo, d, h, mi, s) = crate::web::civil(t);
    let bsd = crate::web::bsd_stamp(t);
    let iso = format!(
        "{}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        crate::render::SYSLOG_YEAR,
        mo,
        d,
        h,
        mi,
        s,
        rng.below(1000)
    );
    (bsd, iso)
}

/// One benign system-log message: `(program, pid, message)`.
fn benign_message(rng: &mut Rng) -> (&'static str, u64, String) {
    let user = *rng.pick(USERS);
    let pid = rng.range(300, 65_000);
    let ip = private_ip(rng);
    let port = rng.range(32_768, 60_999);
    match rng.below(16) {
        0 => ("sshd", pid, format!("Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:{}", fingerprint(rng))),
        1 => ("sshd", pid, format!("Accepted password for {user} from {ip} port {port} ssh2")),
        2 => ("sshd", pid, format!("pam_unix(sshd:session): session opened for user {user}(uid={}) by (uid=0)", rng.range(1000, 1010))),
        3 => ("sshd", pid, format!("pam_unix(sshd:session): session closed for user {user}")),
        4 => ("sshd", pid, format!("Received disconnect from {ip} port {port}:11: disconnected by user")),
        5 => ("CRON", pid, format!("({}) CMD ({})", rng.pick(&["root", user]), rng.pick(&[
            "cd / && run-parts --report /etc/cron.hourly",
            "test -x /usr/sbin/anacron || ( cd / && run-parts --report /etc/cron.daily )",
            "/usr/local/bin/backup.sh > /dev/null 2>&1",
            "[ -x /usr/lib/php/sessionclean ] && /usr/lib/php/sessionclean",
            "/usr/bin/certbot renew --quiet",
        ]))),
        6 => ("CRON", pid, "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)".into()),
        7 => ("systemd", 1, rng.pick(&[
            "Started Daily apt download activities.",
            "Starting Cleanup of Temporary Directories...",
            "logrotate.service: Deactivated successfully.",
            "Finished Rotate log files.",
            "Started Session 42 of User deploy.",
            "Reloading The nginx HTTP and reverse proxy server...",
            "Started Certbot.",
            "man-db.service: Succeeded.",
        ]).to_string()),
        8 => ("sudo", pid, format!("{user} : TTY=pts/{} ; PWD=/home/{user} ; USER=root ; COMMAND={}", rng.below(4), rng.pick(&[
            "/usr/bin/apt update",
            "/usr/bin/systemctl restart nginx",
            "/usr/bin/journalctl -u app --since today",
            "/usr/bin/docker compose pull",
            "/bin/cat /var/log/syslog",
        ]))),
        9 => ("sudo", pid, format!("pam_unix(sudo:session): session opened for user root(uid=0) by {user}(uid={})", rng.range(1000, 1010))),
        10 => ("sudo", pid, "pam_unix(sudo:session): session closed for user root".into()),
        11 => ("systemd-logind", pid, format!("New session {} of user {user}.", rng.range(1, 900))),
        12 => ("kernel", 0, rng.pick(&[
            "EXT4-fs (sda1): mounted filesystem with ordered data mode. Quota mode: none.",
            "e1000e 0000:00:1f.6 eno1: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx",
            "usb 1-1: new high-speed USB device number 3 using xhci_hcd",
            "audit: type=1400 audit(1710468841.123:52): apparmor=\"STATUS\" operation=\"profile_load\" name=\"nvidia_modprobe\" pid=812 comm=\"apparmor_parser\"",
        ]).to_string()),
        13 => ("postfix/smtp", pid, format!("{:X}: to=<{user}@example.com>, relay=mail.example.com[10.0.0.25]:25, delay=0.4, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)", rng.next_u64() & 0xff_ffff_ffff)),
        14 => ("dhclient", pid, format!("DHCPACK of {ip} from 10.0.0.1")),
        _ => ("ntpd", pid, format!("adjusting local clock by {}.{:06}s", rng.below(2), rng.below(1_000_000))),
    }
}

fn fingerprint(rng: &mut Rng) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..43)
        .map(|_| B64[rng.below(64) as usize] as char)
        .collect()
}

/// A benign system-log line, RFC 3164 (most) or RFC 5424, with a `\n`.
pub fn benign_syslog(rng: &mut Rng) -> String {
    let host = *rng.pick(HOSTS);
    let (prog, pid, msg) = benign_message(rng);
    let (bsd, iso) = syslog_stamp(rng);
    if rng.chance(80) {
        if prog == "kernel" {
            format!(
                "{bsd} {host} kernel: [{}.{:06}] {msg}\n",
                rng.range(5, 900_000),
                rng.below(1_000_000)
            )
        } else {
            format!("{bsd} {host} {prog}[{pid}]: {msg}\n")
        }
    } else {
        let pri = if prog == "sshd" || prog == "sudo" {
            86
        } else {
            30
        };
        format!("<{pri}>1 {iso} {host} {prog} {pid} - - {msg}\n")
    }
}

/// A burst of sshd password guessing from one public address: `count` failures a few
/// seconds apart, user names from common guessing lists; with `success`, the guess that
/// worked comes last (`Accepted password` for one of the guessed users, same address).
pub fn ssh_brute_force(count: usize, success: bool, rng: &mut Rng) -> String {
    const GUESSES: &[&str] = &[
        "root", "admin", "test", "oracle", "postgres", "ubuntu", "user", "guest", "pi", "ftpuser",
        "git", "support", "www-data", "hadoop", "deploy",
    ];
    let host = *rng.pick(HOSTS);
    let ip = public_ip(rng);
    let mut t = draw_time(rng);
    let pid0 = rng.range(1000, 60_000);
    let fixed_user = rng.chance(40).then(|| *rng.pick(GUESSES));
    let mut out = String::new();
    for i in 0..count {
        let user = fixed_user.unwrap_or_else(|| *rng.pick(GUESSES));
        let port = rng.range(30_000, 65_000);
        let pid = pid0 + i as u64;
        let stamp = crate::web::bsd_stamp(t);
        let msg = match (user, rng.below(3)) {
            ("root", _) | (_, 0) => {
                format!("Failed password for {user} from {ip} port {port} ssh2")
            }
            (_, 1) => format!("Failed password for invalid user {user} from {ip} port {port} ssh2"),
            _ => format!("Invalid user {user} from {ip} port {port}"),
        };
        out.push_str(&format!("{stamp} {host} sshd[{pid}]: {msg}\n"));
        t += rng.range(1, 6);
    }
    if success {
        // Drawn after the failures, so a burst's failures do not depend on `success`.
        let user = fixed_user
            .filter(|u| *u != "root" || rng.chance(50))
            .unwrap_or_else(|| *rng.pick(&GUESSES[1..]));
        let port = rng.range(30_000, 65_000);
        out.push_str(&format!(
            "{} {host} sshd[{}]: Accepted password for {user} from {ip} port {port} ssh2\n",
            crate::web::bsd_stamp(t),
            pid0 + count as u64
        ));
    }
    out
}
