//! Web requests replayed into access-log lines: Apache/nginx combined and common, nginx
//! with a trailing forwarded-for field, IIS W3C. Surroundings (client address, time,
//! status, size, user agent) are drawn from a seeded stream so rebuilds are identical.

use crate::rng::Rng;

/// The web line formats the corpus writes (all parsed by `opensoc_ingest::parse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebFormat {
    /// Apache combined: common plus `"referer" "user-agent"`.
    Combined,
    /// Apache common: no referer, no user agent.
    Common,
    /// nginx `combined` with `"$http_x_forwarded_for"` after the user agent.
    Nginx,
    /// IIS W3C extended, with its `#Fields:` header.
    W3c,
}

impl WebFormat {
    /// Common carries no user agent or referer: payloads placed there need another format.
    pub fn has_headers(self) -> bool {
        !matches!(self, WebFormat::Common)
    }

    /// A format drawn with the usual mix of real servers (combined and nginx most often).
    pub fn draw(rng: &mut Rng) -> WebFormat {
        match rng.below(10) {
            0..=3 => WebFormat::Combined,
            4..=5 => WebFormat::Nginx,
            6..=7 => WebFormat::W3c,
            _ => WebFormat::Common,
        }
    }
}

/// One HTTP request and its answer, as an access log sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub client: String,
    pub method: String,
    /// Path and query exactly as on the wire (already encoded).
    pub target: String,
    pub status: u16,
    pub bytes: u32,
    pub referer: Option<String>,
    pub user_agent: String,
    pub user: Option<String>,
    /// Seconds since 2025-01-01 00:00:00 UTC.
    pub time: u64,
}

/// Real user agents of browsers, crawlers and common tools.
pub const BROWSER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
];

/// Crawlers that visit every public site.
pub const CRAWLER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
];

/// Command-line clients and libraries, used by scripts, monitors and attackers alike.
pub const TOOL_AGENTS: &[&str] = &[
    "curl/7.88.1",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Wget/1.21.3",
    "Go-http-client/1.1",
    "Python-urllib/3.11",
    "okhttp/4.12.0",
];

/// Attack tools that announce themselves.
pub const SCANNER_AGENTS: &[&str] = &[
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Nuclei",
    "Fuzz Faster U Fool v2.1.0",
    "gobuster/3.6",
];

/// A public-looking client address (documentation and common hosting ranges).
pub fn public_ip(rng: &mut Rng) -> String {
    const PREFIXES: &[&str] = &[
        "203.0.113",
        "198.51.100",
        "185.220.101",
        "45.155.205",
        "91.240.118",
        "62.210.180",
        "138.68.24",
        "159.65.12",
        "5.188.62",
        "103.75.190",
        "37.19.221",
        "80.82.77",
        "66.249.66",
        "40.77.167",
        "52.167.144",
        "24.5.67",
        "73.162.41",
        "81.2.69",
        "151.101.12",
        "89.160.20",
    ];
    format!("{}.{}", rng.pick(PREFIXES), rng.range(2, 254))
}

/// An address of a private network (office users, monitors, proxies).
pub fn private_ip(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => format!(
            "10.{}.{}.{}",
            rng.below(8),
            rng.below(40),
            rng.range(2, 254)
        ),
        1 => format!("192.168.{}.{}", rng.below(4), rng.range(2, 254)),
        _ => format!("172.16.{}.{}", rng.below(16), rng.range(2, 254)),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An RFC 3164 (BSD syslog) time stamp: `Nov  2 10:24:01`.
pub fn bsd_stamp(secs: u64) -> String {
    let (_, mo, d, h, mi, s) = civil(secs);
    format!("{} {:>2} {:02}:{:02}:{:02}", MONTHS[mo - 1], d, h, mi, s)
}

/// Civil date of `secs` after 2025-01-01 UTC: (year, month 1-12, day, h, m, s).
pub fn civil(secs: u64) -> (i64, usize, u64, u64, u64, u64) {
    let days = (secs / 86_400) as i64 + 20_089; // 2025-01-01 is day 20089 of the epoch
                                                // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs % 86_400;
    (year, month, day, rem / 3600, rem / 60 % 60, rem % 60)
}

/// A time within 2025-2026.
pub fn draw_time(rng: &mut Rng) -> u64 {
    rng.below(2 * 365 * 86_400)
}

/// Apache's escaping of request line and header values in the log: `"` and `\`
/// backslashed, control and non-ASCII bytes as `\xhh`.
fn apache_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// nginx escapes `"`, `\` and bytes outside printable ASCII as `\xHH`.
fn nginx_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'"' | b'\\' => out.push_str(&format!("\\x{b:02X}")),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02X}")),
        }
    }
    out
}

/// IIS writes spaces in header fields as `+` and the target with no spaces.
fn w3c_value(s: &str) -> String {
    if s.is_empty() {
        return "-".to_owned();
    }
    s.chars()
        .map(|c| if c == ' ' { '+' } else { c })
        .filter(|c| !c.is_control())
        .collect()
}

/// W3C header the corpus writes (the columns IIS logs by default).
pub const W3C_FIELDS: &str = "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status time-taken";

impl Request {
    /// The log text of this request in `format`: one line, or for W3C the header
    /// directives followed by the line.
    pub fn render(&self, format: WebFormat, rng: &mut Rng) -> String {
        let (y, mo, d, h, mi, s) = civil(self.time);
        let user = self.user.as_deref().unwrap_or("-");
        let referer = self.referer.as_deref().unwrap_or("-");
        match format {
            WebFormat::Combined | WebFormat::Common | WebFormat::Nginx => {
                let tz = *rng.pick(&[
                    "+0000", "+0000", "+0100", "+0200", "-0500", "-0800", "+0530",
                ]);
                let proto =
                    *rng.pick(&["HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/2.0", "HTTP/1.0"]);
                let esc = if format == WebFormat::Nginx {
                    nginx_escape
                } else {
                    apache_escape
                };
                let bytes = if self.bytes == 0 && format != WebFormat::Nginx {
                    "-".to_owned()
                } else {
                    self.bytes.to_string()
                };
                let mut line = format!(
                    "{} - {} [{:02}/{}/{}:{:02}:{:02}:{:02} {}] \"{} {} {}\" {} {}",
                    self.client,
                    user,
                    d,
                    MONTHS[mo - 1],
                    y,
                    h,
                    mi,
                    s,
                    tz,
                    self.method,
                    esc(&self.target),
                    proto,
                    self.status,
                    bytes
                );
                if format != WebFormat::Common {
                    line.push_str(&format!(
                        " \"{}\" \"{}\"",
                        esc(referer),
                        esc(&self.user_agent)
                    ));
                }
                if format == WebFormat::Nginx {
                    line.push_str(" \"-\"");
                }
                line.push('\n');
                line
            }
            WebFormat::W3c => {
                let (stem, query) = match self.target.split_once('?') {
                    Some((p, q)) if !q.is_empty() => (p, q),
                    Some((p, _)) => (p, "-"),
                    None => (self.target.as_str(), "-"),
                };
                let server = format!("10.0.{}.{}", rng.below(4), rng.range(4, 40));
                let port = if rng.chance(70) { 443 } else { 80 };
                let substatus = if self.status == 404 { rng.below(4) } else { 0 };
                let win32 = if self.status == 404 { 2 } else { 0 };
                format!(
                    "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n#Date: {y}-{mo:02}-{d:02} 00:00:00\n{W3C_FIELDS}\n{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} {server} {} {} {} {port} {} {} {} {} {} {substatus} {win32} {}\n",
                    self.method,
                    w3c_value(&stem.replace(' ', "%20")),
                    w3c_value(&query.replace(' ', "%20")),
                    w3c_value(user),
                    self.client,
                    w3c_value(&self.user_agent),
                    w3c_value(referer),
                    self.status,
                    rng.range(15, 900),
                )
            }
        }
    }
}

/// How a client encodes a value it puts in a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Browsers' form encoding: space as `+`, reserved and non-ASCII bytes as `%XX`.
    Form,
    /// Percent-encoding with space as `%20` (most libraries).
    Percent,
    /// What `curl` and scripts send when the author did not encode: only spaces and
    /// bytes a request line cannot hold are encoded.
    Minimal,
    /// Percent-encoded twice (`%2527`), as evasive tools send it.
    Double,
}

impl Encoding {
    /// The usual mix: form and percent most often, raw and double sometimes.
    pub fn draw(rng: &mut Rng) -> Encoding {
        match rng.below(20) {
            0..=7 => Encoding::Percent,
            8..=13 => Encoding::Form,
            14..=17 => Encoding::Minimal,
            _ => Encoding::Double,
        }
    }

    /// Short name for the record's metadata.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Form => "form",
            Encoding::Percent => "percent",
            Encoding::Minimal => "minimal",
            Encoding::Double => "double",
        }
    }
}

/// Encodes a raw (decoded) value for a query string or path segment.
pub fn encode(raw: &str, enc: Encoding) -> String {
    let mut out = String::with_capacity(raw.len() * 2);
    for b in raw.bytes() {
        let keep = match enc {
            Encoding::Form | Encoding::Percent | Encoding::Double => {
                b.is_ascii_alphanumeric() || b"-._~".contains(&b)
            }
            Encoding::Minimal => (0x21..=0x7e).contains(&b) && !b"#%&".contains(&b),
        };
        if keep {
            out.push(b as char);
        } else if b == b' ' && enc == Encoding::Form {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if enc == Encoding::Double {
        out = out.replace('%', "%25");
    }
    out
}

/// Decodes `%XX` (and `+` as space when `plus` is set); invalid escapes stay as they are,
/// invalid UTF-8 becomes U+FFFD.
pub fn decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An application endpoint with a parameter that carries user input.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    pub path: &'static str,
    pub param: &'static str,
    /// Other parameters that come before the input one, as the application writes them.
    pub prefix: &'static str,
}

const fn ep(path: &'static str, param: &'static str, prefix: &'static str) -> Endpoint {
    Endpoint {
        path,
        param,
        prefix,
    }
}

/// Endpoints of common applications. Attacks and benign traffic share them, so the
/// parameter name alone never tells the class.
pub const ENDPOINTS: &[Endpoint] = &[
    ep("/index.php", "page", ""),
    ep("/index.php", "id", "option=com_content&view=article&"),
    ep("/products.php", "id", ""),
    ep("/product/view", "sku", ""),
    ep("/search", "q", ""),
    ep("/", "s", ""),
    ep("/catalog/search", "query", "lang=en&"),
    ep("/wp-admin/admin-ajax.php", "id", "action=get_post&"),
    ep("/api/v1/users", "filter", ""),
    ep("/api/v2/orders", "status", "limit=20&"),
    ep("/cart/add", "item", "qty=1&"),
    ep("/login", "username", ""),
    ep("/account/reset", "email", ""),
    ep("/download.php", "file", ""),
    ep("/view", "template", ""),
    ep("/include.php", "path", ""),
    ep("/cgi-bin/status", "host", ""),
    ep("/tools/ping", "ip", ""),
    ep("/report", "name", "format=pdf&"),
    ep("/forum/viewtopic.php", "t", "f=2&"),
    ep("/news/article", "slug", ""),
    ep("/redirect", "url", ""),
    ep("/comments/post", "text", "article=1182&"),
    ep("/shop/category", "sort", "cat=shoes&"),
];

/// Draws a status for an attack request: WAFs block many (403), scanners hit missing
/// pages (404), some reach the application (200) or break it (500).
pub fn attack_status(rng: &mut Rng) -> u16 {
    *rng.pick(&[403, 403, 403, 404, 404, 200, 200, 200, 200, 500, 400, 302])
}

/// A response size that fits the status.
pub fn size_for(status: u16, rng: &mut Rng) -> u32 {
    match status {
        200 => rng.range(300, 48_000) as u32,
        206 => rng.range(1_000, 900_000) as u32,
        301 | 302 => rng.range(0, 320) as u32,
        304 | 204 => 0,
        403 => *rng.pick(&[199, 548, 162, 1_047, 3_971]),
        404 => *rng.pick(&[196, 153, 555, 1_245, 9_481, 31_802]),
        500 => rng.range(0, 900) as u32,
        _ => rng.range(150, 600) as u32,
    }
}

/// User agent of an attacking client: tools often, a faked browser string as often.
pub fn attack_agent(rng: &mut Rng) -> String {
    match rng.below(10) {
        0..=3 => rng.pick(BROWSER_AGENTS).to_string(),
        4..=6 => rng.pick(TOOL_AGENTS).to_string(),
        _ => rng.pick(SCANNER_AGENTS).to_string(),
    }
}

/// Where a payload goes in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    Query,
    Path,
    UserAgent,
    Referer,
}

impl Placement {
    pub fn name(self) -> &'static str {
        match self {
            Placement::Query => "query",
            Placement::Path => "path",
            Placement::UserAgent => "user-agent",
            Placement::Referer => "referer",
        }
    }
}

/// A request that carries `raw` (a decoded payload) in `placement`, with drawn
/// surroundings. The returned string is the payload as it appears in the log line.
pub fn attack_request(raw: &str, placement: Placement, rng: &mut Rng) -> (Request, String) {
    let endpoint = *rng.pick(ENDPOINTS);
    let enc = Encoding::draw(rng);
    let status = attack_status(rng);
    let mut agent = attack_agent(rng);
    let mut referer = None;
    let (target, shown) = match placement {
        Placement::Query => {
            let v = encode(raw, enc);
            (
                format!(
                    "{}?{}{}={}",
                    endpoint.path, endpoint.prefix, endpoint.param, v
                ),
                v,
            )
        }
        Placement::Path => {
            // Paths keep `/` as the separator the server splits on.
            let v = encode(raw, enc).replace("%2F", "/").replace("%252F", "/");
            let base = endpoint.path.trim_end_matches(".php");
            let base = if base == "/" { "" } else { base };
            (format!("{base}/{}", v.trim_start_matches('/')), v)
        }
        Placement::UserAgent => {
            agent = raw.to_owned();
            (endpoint.path.to_owned(), raw.to_owned())
        }
        Placement::Referer => {
            let v = encode(raw, enc);
            let r = format!("https://www.example.com/search?q={v}");
            referer = Some(r);
            (endpoint.path.to_owned(), v)
        }
    };
    let method = if rng.chance(85) { "GET" } else { "HEAD" };
    let req = Request {
        client: public_ip(rng),
        method: method.to_owned(),
        target,
        status,
        bytes: size_for(status, rng),
        referer,
        user_agent: agent,
        user: None,
        time: draw_time(rng),
    };
    (req, shown)
}

/// A request whose query value is `encoded` exactly as given (already percent-encoded).
pub fn attack_request_encoded(encoded: &str, rng: &mut Rng) -> (Request, String) {
    let (mut req, _) = attack_request("x", Placement::Query, rng);
    let endpoint = *rng.pick(ENDPOINTS);
    req.target = format!(
        "{}?{}{}={}",
        endpoint.path,
        endpoint.prefix,
        endpoint.param,
        encoded.replace(' ', "+")
    );
    (req, encoded.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_as_clients_send_them() {
        let raw = "1' OR '1'='1 -- é";
        assert_eq!(
            encode(raw, Encoding::Form),
            "1%27+OR+%271%27%3D%271+--+%C3%A9"
        );
        assert_eq!(
            encode(raw, Encoding::Percent),
            "1%27%20OR%20%271%27%3D%271%20--%20%C3%A9"
        );
        assert_eq!(
            encode(raw, Encoding::Minimal),
            "1'%20OR%20'1'='1%20--%20%C3%A9"
        );
        assert_eq!(encode("' ", Encoding::Double), "%2527%2520");
        assert_eq!(decode("%2527%20a+b%zz%", true), "%27 a b%zz%");
        assert_eq!(decode(&encode(raw, Encoding::Percent), false), raw);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (2025, 1, 1, 0, 0, 0));
        assert_eq!(civil(59 * 86_400 + 3_661), (2025, 3, 1, 1, 1, 1));
        assert_eq!(civil(365 * 86_400), (2026, 1, 1, 0, 0, 0));
    }

    #[test]
    fn every_format_parses_as_web() {
        let mut rng = Rng::for_item(1, "t");
        let (req, _) = attack_request(
            "<script>alert(\"x\")</script>",
            Placement::UserAgent,
            &mut rng,
        );
        for (f, name) in [
            (WebFormat::Combined, "access-combined"),
            (WebFormat::Nginx, "access-combined"),
            (WebFormat::Common, "access-common"),
            (WebFormat::W3c, "w3c"),
        ] {
            let text = req.render(f, &mut rng);
            let entries = crate::render::entries("t.log", &text);
            assert_eq!(entries.len(), 1, "{text}");
            assert_eq!(entries[0].format.name(), name, "{text}");
        }
    }
}
