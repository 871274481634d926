//! Detector signals: facts deterministic code knows about an entry before the model reads
//! it. Each signal names its class, the rule that fired, and where it fired (byte offsets
//! of the raw slice in the entry text, and the decoded text it matched in).

use std::sync::LazyLock;

use opensoc_ingest::{parse_line, Format, LogEvent};
use regex::{Regex, RegexSet};
use serde::Serialize;

use crate::decode::{base64_text, canonical, decode, glob_targets, squeezed};

/// What a signal says about the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Sqli,
    Xss,
    CommandInjection,
    PathTraversal,
    FileInclusion,
    /// A command line of the kind malware and hands-on attackers run (download and
    /// execute, reverse shells, encoded PowerShell, credential dumping).
    MaliciousCommand,
    /// A known scanner or attack tool announces itself (user agent).
    Scanner,
    /// A request for a path that only scanners ask for (`/.env`, `/.git/config`, ...).
    Probe,
    /// One response large enough to carry a data dump.
    LargeResponse,
    /// A failed authentication.
    AuthFailure,
    /// Log text that imitates the analyst's prompt or answer format: somebody tries to
    /// steer the verdict. Never lowers a verdict; flags it for review.
    LogInjection,
}

impl Class {
    /// Stable name, as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Class::Sqli => "sqli",
            Class::Xss => "xss",
            Class::CommandInjection => "command-injection",
            Class::PathTraversal => "path-traversal",
            Class::FileInclusion => "file-inclusion",
            Class::MaliciousCommand => "malicious-command",
            Class::Scanner => "scanner",
            Class::Probe => "probe",
            Class::LargeResponse => "large-response",
            Class::AuthFailure => "auth-failure",
            Class::LogInjection => "log-injection",
        }
    }

    /// A payload: the request carries an attack whatever else the entry says, so the
    /// verdict can never be "No Threat".
    pub fn is_payload(self) -> bool {
        matches!(
            self,
            Class::Sqli
                | Class::Xss
                | Class::CommandInjection
                | Class::PathTraversal
                | Class::FileInclusion
                | Class::MaliciousCommand
        )
    }

    /// Taxonomy categories a web request with this signal can fall under.
    pub fn categories(self) -> &'static [&'static str] {
        match self {
            Class::Sqli => &["SQL INJECTION"],
            Class::Xss => &["XSS"],
            Class::CommandInjection => &["COMMAND INJECTION"],
            // Labels (the paper's and the corpus's) call `../` traversal; a file target
            // without it is an inclusion or a traversal by other means.
            Class::PathTraversal => &["PATH TRAVERSAL"],
            Class::FileInclusion => &["LFI", "PATH TRAVERSAL"],
            Class::MaliciousCommand => &["COMMAND INJECTION", "MALWARE C2"],
            Class::Scanner | Class::Probe => &["RECONNAISSANCE"],
            Class::LargeResponse => &["DATA EXFILTRATION"],
            Class::AuthFailure => &[
                "BRUTE FORCE",
                "SSH BRUTE FORCE",
                "CREDENTIAL STUFFING",
                "WINDOWS THREAT",
            ],
            Class::LogInjection => &[],
        }
    }
}

/// One detector hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Signal {
    pub class: Class,
    /// The rule that fired (`sqli-union-select`, `libinjection-sqli`, `scanner-agent`).
    pub rule: &'static str,
    /// Byte offsets in the entry text of the raw slice the rule looked at.
    pub start: usize,
    pub end: usize,
    /// The text the rule matched in: the slice, or its decoded form when `decoded`.
    pub text: String,
    pub decoded: bool,
}

/// Longest `text` kept in a signal; evidence, not a copy of the entry.
const MAX_SIGNAL_TEXT: usize = 200;

/// Where in a request a value sits (decides which rules apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Path,
    Query,
    Header,
    /// Free text of a non-web record.
    Message,
}

/// A compiled rule: name, class, pattern on the canonical decoded text.
struct Rule {
    name: &'static str,
    class: Class,
    places: &'static [Place],
}

const WEB: &[Place] = &[Place::Path, Place::Query, Place::Header];
const VALUES: &[Place] = &[Place::Query, Place::Header];
const ANY: &[Place] = &[Place::Path, Place::Query, Place::Header, Place::Message];
const PATH: &[Place] = &[Place::Path];

/// Rules as (name, class, places, pattern). Patterns run on lower-cased, decoded text
/// with comments and whitespace runs collapsed to one space.
const RULES: &[(&str, Class, &[Place], &str)] = &[
    // SQL injection.
    (
        "sqli-union-select",
        Class::Sqli,
        WEB,
        r"union( all| distinct)? ?\(? ?select\b",
    ),
    (
        "sqli-select-from",
        Class::Sqli,
        VALUES,
        r"(['\x22)]|\d) ?;? ?select\b.{1,200}?\bfrom\b",
    ),
    (
        "sqli-tautology",
        Class::Sqli,
        VALUES,
        r"(['\x22]|\d) ?\)? ?(or|and|xor|\|\||&&) ?\(? ?['\x22]?\w{0,20}['\x22]? ?(=|<>|!=|<=?|>=?|like\b|is\b|regexp\b)",
    ),
    (
        "sqli-quote-comment",
        Class::Sqli,
        VALUES,
        r"['\x22] ?\)? ?(--|#$|/\*)",
    ),
    (
        "sqli-time-delay",
        Class::Sqli,
        WEB,
        r"\b(sleep|pg_sleep) ?\( ?\d|\bbenchmark ?\(|waitfor delay\b|dbms_pipe\.receive_message",
    ),
    (
        "sqli-catalog",
        Class::Sqli,
        WEB,
        r"information_schema|\bsysobjects\b|sqlite_master|\bpg_catalog\b|mysql\.user\b|\bsys\.tables\b",
    ),
    (
        "sqli-stacked",
        Class::Sqli,
        VALUES,
        r"; ?(drop|delete|insert|update|shutdown|truncate|alter|create|exec|execute|declare)\b",
    ),
    (
        "sqli-functions",
        Class::Sqli,
        WEB,
        r"@@version|\b(extractvalue|updatexml|load_file|group_concat|xp_cmdshell|sp_executesql|utl_inaddr|ctxsys\.)\b|\bconvert ?\( ?int|\bchar ?\( ?\d+ ?(,|\))|into (out|dump)file\b|\bpg_sleep\b|\blo_(import|export) ?\(|\bunistr ?\(|::(bool|int|text|varchar)\b|\bfloor ?\( ?rand ?\(|\bconcat(_ws)? ?\(|\(\s*select\b|\b(current_user|session_user|system_user)\b|\b(version|database|user|schema) ?\( ?\)",
    ),
    (
        "sqli-order-by",
        Class::Sqli,
        VALUES,
        r"\border by \d+ ?(--|#|;)",
    ),
    // Statement fragments that only SQL writes: `select char(`, `select (case`,
    // `having (1 or`, `union all` after a number or quote.
    (
        "sqli-fragments",
        Class::Sqli,
        VALUES,
        r"\bselect ?\(? ?(char|case|concat)\b|\bhaving ?\(? ?\d+ ?(or|and)\b|(\d|['\x22)]) ?union all\b",
    ),
    // Cross-site scripting.
    (
        "xss-tag",
        Class::Xss,
        WEB,
        r"<\s*/?\s*(script|iframe|svg|img|body|object|embed|video|audio|details|marquee|input|form|base|link|meta|style|math|isindex|frameset|applet|xss|a\s+href|noscript|v:\w+|template|animate|set|handler|portal|bgsound|layer|ilayer|import)\b",
    ),
    (
        "xss-scheme",
        Class::Xss,
        WEB,
        r"\b(javascript|vbscript|livescript) ?:|data ?: ?text/html|\bj\s*a\s*v\s*a\s*s\s*c\s*r\s*i\s*p\s*t\s*:",
    ),
    (
        "xss-handler",
        Class::Xss,
        WEB,
        r"[\s\x22'/;<]on(error|load|mouse\w+|focus\w*|blur|click|dblclick|key\w+|submit|change|input|toggle|animation\w+|transition\w+|pointer\w+|begin|end|start|finish|scroll|wheel|drag\w*|drop|copy|paste|cut|hashchange|message|pageshow|popstate|resize|unload|beforeunload|show|auxclick|contextmenu) ?=",
    ),
    (
        "xss-dom",
        Class::Xss,
        WEB,
        r"document\.(cookie|domain|location|write)|window\.location|string\.fromcharcode|\bexpression ?\(|\b(alert|prompt|confirm) ?(\(|`)|\b(window|self|top|parent|this|globalthis|frames) ?\[ ?['\x22`]|\[ ?['\x22`](alert|eval|cookie|document)['\x22`] ?\]",
    ),
    // Script without a tag, for a value that lands inside JavaScript: a sink called
    // through a wrapper (`(alert)(1)`, `confirm.call(null,1)`, `[].sort.call`${alert}``),
    // named in a template literal, or reached through a computed property of `window`.
    (
        "xss-js-call",
        Class::Xss,
        WEB,
        r"\b(alert|prompt|confirm|eval) ?\) ?(\(|`)|\b(alert|prompt|confirm|eval|settimeout|setinterval) ?\. ?(call|apply|bind) ?(\(|`)|\.(call|apply) ?`|\$\{ ?(alert|prompt|confirm|eval|document|location|top|self|window)\b|\.(find|map|sort|filter|some|every|foreach|then) ?\( ?(alert|prompt|confirm|eval)\b|\b(window|self|top|parent|globalthis|frames) ?\[ ?[\[('\x22`]",
    ),
    // Command and code injection.
    (
        "cmd-separator",
        Class::CommandInjection,
        VALUES,
        r"(;|\||&&|`|\$\(|\n) ?(whoami|uname|pwd|wget|curl|nc|ncat|netcat|bash|sh|zsh|python\d?|perl|php|ruby|nslookup|chmod|ifconfig|ipconfig|tftp|busybox|powershell|cmd|whoami\.exe|certutil|vim?|gcc|c89|c99|irb|nohup|strace|xterm|telnet|xxd|killall|pkill|nmap)\b|(;|\||&&|`|\$\(|\n) ?/?(usr/)?(local/)?s?bin/\w",
    ),
    // Words that are also English need a shell-like argument or the value's end.
    (
        "cmd-separator-args",
        Class::CommandInjection,
        VALUES,
        r"(;|\||&&|`|\$\(|\n) ?(id|cat|ls|echo|ping|sleep|rm|dir|type|set|env|net|find|head|tail|time|timeout|nice|ex|sc|reg|kill|ssh|awk|sed|grep|dig|od|cc|base64|regedit|test)( +[-/$.~%]| +\d+\.\d| *$| *[;|&`)\n]|<<<| ?\(\))",
    ),
    // The same in a request path (`/;cat /etc/passwd`, `/cgi-bin/;id;`), where a bare
    // word at the end is too often a path parameter: an argument or separator must follow.
    (
        "cmd-path-separator",
        Class::CommandInjection,
        PATH,
        r"(;|\||&&|`|\$\() ?(id|cat|ls|echo|ping|sleep|rm|uname|whoami|wget|curl|nc|bash|sh|python\d?|perl|chmod|type|dir|net)( +[-/$.~%'\x22\w]| *[;|&`)])",
    ),
    // Shell syntax that ordinary text never has: a here-string, an empty command
    // substitution inside a word (`ping$()`), a function defined and called (`f(){ f|f& };`).
    (
        "cmd-shell-syntax",
        Class::CommandInjection,
        VALUES,
        r"\w<<<|<<< ?['\x22$(\w]|[a-z](\$\(\)|``|\$@)|\b\w+ ?\(\) ?\{[^}]{0,40}\} ?;|\w=\$'[^']{1,40}'|(;|\||&&) ?\$\{?[a-z_]\w*\}? *($|[;|&\n])",
    ),
    // Windows batch conditionals and variable expansion (`IF /I "%var%" NEQ ...`).
    (
        "cmd-batch",
        Class::CommandInjection,
        VALUES,
        r"\bif +(/i +)?(not +)?(exist|defined|errorlevel)\b|\bif +(/i +)?(not +)?\x22?%[\w~:-]+%|%\w+% +(equ|neq|lss|leq|gtr|geq)\b",
    ),
    (
        "cmd-shell-path",
        Class::CommandInjection,
        WEB,
        r"/bin/(ba|da|z|k)?sh\b|/usr/bin/(python|perl|php|env)\b|(^|[\s;|&`'\x22(])/(usr/)?(local/)?s?bin/(id|whoami|uname|cat|ls|nc|ncat|wget|curl|ping|python\d?|perl|ruby|php)\b|\bcmd(\.exe)? ?/c\b|\$\{ifs\}|\$ifs\b",
    ),
    (
        "cmd-shellshock",
        Class::CommandInjection,
        WEB,
        r"\(\) ?\{[^}]{0,20}\} ?;",
    ),
    (
        "cmd-log4shell",
        Class::CommandInjection,
        ANY,
        r"\$\{ ?(jndi|lower|upper|env|sys|::-|date)\b?[^}]{0,10}:|\$\{ ?\$\{|\$\{ ?::-\w{1,4} ?\}",
    ),
    (
        "cmd-php-code",
        Class::CommandInjection,
        WEB,
        r"<\?(php|=)|\b(system|passthru|shell_exec|popen|proc_open|pcntl_exec|base64_decode|assert|call_user_func|create_function|preg_replace) ?\(|\beval ?\(",
    ),
    (
        "cmd-template",
        Class::CommandInjection,
        VALUES,
        r"\{\{.{0,40}(\d ?\* ?\d|config|self\.|request\.|__class__|__globals__|popen).{0,40}\}\}|\$\{\d+ ?\* ?\d+\}|<%=?.{0,40}%>|#\{.{0,40}\}",
    ),
    (
        "cmd-download-exec",
        Class::MaliciousCommand,
        ANY,
        r"\b(wget|curl|tftp|fetch)\s+(-\S+\s+)*(https?|ftp)://\S+.{0,80}(\|\s*(ba)?sh|chmod|-o\s*/tmp|-O\s*/tmp|;\s*sh\b)|\b(wget|curl)\s+(-\S+\s+)*(https?|ftp)://\S+\s*(\||;|&&)",
    ),
    (
        "cmd-reverse-shell",
        Class::MaliciousCommand,
        ANY,
        r"/dev/tcp/|\bnc(at)?\s+(-\w+\s+)*-e\s|\bbash\s+-i\b|\bsocket\.socket\(|mkfifo\s+/tmp|\bsh\s+-i\b",
    ),
    (
        "cmd-encoded-powershell",
        Class::MaliciousCommand,
        ANY,
        r"powershell(\.exe)?\s.{0,80}\s-(e|en|enc|enco|encodedcommand)\s+[a-z0-9+/=]{20,}|\biex\s*\(|invoke-expression|downloadstring\(|frombase64string\(",
    ),
    (
        "cmd-credential-dumping",
        Class::MaliciousCommand,
        ANY,
        r"mimikatz|sekurlsa|lsass\.dmp|procdump.{0,40}lsass|comsvcs\.dll.{0,20}minidump|ntds\.dit|reg(\.exe)?\s+save\s+hklm\\(sam|system|security)",
    ),
    (
        "cmd-base64-shell",
        Class::MaliciousCommand,
        ANY,
        r"base64\s+(-d|--decode)\s*\|\s*(ba)?sh|echo\s+[a-z0-9+/=]{16,}\s*\|\s*base64",
    ),
    // Traversal and file inclusion.
    (
        "traversal-dotdot",
        Class::PathTraversal,
        WEB,
        r"(\.\.[/\\]|[/\\]\.\.($|[/\\?;])|\.\.;/|\.\.(0x)?(2f|5c)|0x2e0x2e|\x{FFFD}(\.|etc|passwd|win)|\.\.\x{FFFD})",
    ),
    (
        "lfi-sensitive-file",
        Class::FileInclusion,
        VALUES,
        r"(^|[^\w.])/?etc/(passwd|shadow|groups?|hosts|issue|hostname|crontab|sudoers|master\.passwd|subuid|subgid|services|fstab|resolv\.conf)\b|/etc/[a-z][\w.-]*/|/proc/[a-z]|/root/|\.aws/credentials|/\.docker/|\b(httpd|apache2|nginx|php|my|lighttpd)\.(conf|ini|cnf)\b|/var/log/|\bwin\.ini\b|\bboot\.ini\b|system32[/\\]|[/\\]windows[/\\]|web\.config\b|wp-config\.php|\.htpasswd|\.htaccess|/\.ssh/|\bid_rsa\b|\.bash_history|/\.(bashrc|bash_profile|profile|zshrc|netrc|pgpass|my\.cnf)\b|/(apache2?|httpd|nginx|logs?)/.{0,40}\b(error|access)[._]log\b",
    ),
    (
        "lfi-absolute-path",
        Class::FileInclusion,
        &[Place::Query],
        r"^\s*(/etc/|/var/|/proc/|/root/|/usr/|/opt/|/boot/|/dev/|/sys/|/home/[^/]+/\.|[a-z]:[/\\]|\\\\)",
    ),
    (
        "lfi-wrapper",
        Class::FileInclusion,
        VALUES,
        r"^\s*(php|file|expect|data|zip|phar|glob|gopher|dict|jar|compress\.zlib)://|php://(filter|input)|\b(url|jar):(file|https?|ftp):|\bfile:/",
    ),
    ("lfi-null-byte", Class::FileInclusion, VALUES, r"\x00|%00"),
    (
        "rfi-remote-script",
        Class::FileInclusion,
        VALUES,
        r"^\s*(https?|ftp)://[^\s?#]+\.(txt|php\d?|phtml|sh|pl|py|jsp|asp)(\?\S*)?\s*$|^\s*(https?|ftp)://\S+\?\s*$",
    ),
    // Reconnaissance.
    (
        "sqli-quote-operator-comment",
        Class::Sqli,
        VALUES,
        r"['\x22\x{2018}\x{2019}`][^'\x22\n]{0,30}(--(\s|$)|/\*)",
    ),
    (
        "sqli-path-quote",
        Class::Sqli,
        PATH,
        r"['\x22] ?\)? ?(and|or|union|select|order|group|having)\b",
    ),
    (
        "sqli-unicode-quote",
        Class::Sqli,
        VALUES,
        r"[\x{2018}\x{2019}] ?(or|and) ?[\x{2018}\x{2019}]?\w",
    ),
    (
        "cmd-shell-invocation",
        Class::CommandInjection,
        VALUES,
        r"\b(sh|bash|zsh|dash|ksh|csh|tcsh|busybox sh)\s+-c\b|\\?!\s?(whoami|id|pwd|sh|bash|uname)\b",
    ),
    (
        "cmd-windows-batch",
        Class::CommandInjection,
        VALUES,
        r"\bif\s+(/i\s+)?(not\s+)?(exist|defined|errorlevel|\S+\s*==|\(|\x22)|\bfor\s+/[fdlr]\b|%comspec%|\bset\s+/[ap]\b|\bstart\s+/b\b|\b(cmd|command)(\.exe|\.com)?\s*/[ck]\b",
    ),
    (
        "cmd-mail-protocol",
        Class::CommandInjection,
        VALUES,
        r"\n ?[a-z]\d{3} (search|append|uid|login|select|fetch|store|list|copy|examine|delete|create|rename)\b|\n ?(rcpt to|mail from|helo|ehlo)\b",
    ),
    (
        "lfi-sensitive-path",
        Class::FileInclusion,
        PATH,
        r"\bwin\.ini\b|\bboot\.ini\b|/etc/(passwd|shadow|groups?|hosts)\b|^/[a-z]:/",
    ),
    (
        "probe-path",
        Class::Probe,
        PATH,
        r"/\.(env|git|svn|hg|aws|ds_store|docker|npmrc|bash_history)\b|/(phpmyadmin|pma|myadmin|mysqladmin|phpmyadmin\d+)\b|/wp-admin/(install|setup-config)\.php|/cgi-bin/\S*\.(sh|cgi|pl)\b|/hnap1\b|/boaform\b|/actuator\b|/server-status\b|/vendor/phpunit\b|/solr/admin\b|/manager/html\b|/jmx-console\b|/invoker/|/wls-wsat\b|/_ignition\b|/telescope/requests|/eval-stdin\.php|/gponform\b|/tmui/|/(shell|cmd|c99|r57|webshell|wso|alfa)\.(php|asp|aspx|jsp)\b|/(backup|dump|db|database|site)\.(sql|zip|tar|tar\.gz|tgz|rar|bak)\b|\.(bak|old|orig|swp|save)$|/proc/[a-z]|/[\w-]*shell[\w-]*\.(php|asp|aspx|jsp)\b|w00tw00t|/setup\.cgi\b|/console/login\b|/owa/auth/x\.js|/autodiscover/autodiscover\.json|/remote/fgt_lang|/global-protect/|/api/jsonws/invoke|/struts2?\b|/\w+\.action$|/sitecore/|/cfide/|/wp-content/plugins/\S+/readme\.txt",
    ),
];

/// User agents of scanners and attack tools (lower case, substring match).
const SCANNER_AGENTS: &[&str] = &[
    "sqlmap",
    "nikto",
    "nmap",
    "masscan",
    "zgrab",
    "nuclei",
    "wpscan",
    "dirbuster",
    "gobuster",
    "ffuf",
    "feroxbuster",
    "wfuzz",
    "acunetix",
    "nessus",
    "openvas",
    "w3af",
    "arachni",
    "skipfish",
    "burp",
    "owasp zap",
    "zaproxy",
    "hydra",
    "medusa",
    "jaeles",
    "whatweb",
    "netsparker",
    "qualys",
    "havij",
    "commix",
    "fimap",
    "xsser",
    "zmeu",
    "morfeus",
    "zmap",
    "censysinspect",
    "l9explore",
    "l9tcpid",
    "httpx - open-source",
    "dirb",
    "joomscan",
    "brutus",
    "metasploit",
    "nuclei",
    "interactsh",
    "paros",
    "webinspect",
    "appscan",
    "vega/",
    "grabber",
    "struts-pwn",
    "sysscan",
    "scanbot",
    "fuzz faster u fool",
];

/// Phrases and markers with which log text imitates the analyst's prompt or answer
/// (underscores count as spaces: user names cannot hold spaces).
const INJECTION_PATTERN: &str = r"(?i)\b(threat_type|mitre_technique|mitre_tactic|risk_score)[\s_]*:|\bseverity[\s_]*:[\s_]*(critical|high|medium|low)\b|#{3,}[\s_]*(instruction|input|response|system)|<\|(im_start|im_end|endoftext|system|user|assistant)\|>|</?s>[\s_]*\[?inst|\bignore[\s_]+(all[\s_]+|any[\s_]+|the[\s_]+)*(previous|prior|above|earlier|preceding)[\s_]+(instructions?|prompts?|rules|context)|\bdisregard[\s_]+(all[\s_]+|the[\s_]+)*(previous|prior|above)|\byou[\s_]+are[\s_]+now\b|\bnew[\s_]+instructions[\s_]*:|\bsystem[\s_]+prompt\b|\bno[\s_]+threat[\s_]+detected\b|\b(classify|mark|label|treat|flag|report)[\s_]+(this|it|the[\s_]+\w+|all[\s_]+\w+)([\s_]+\w+)?[\s_]+as\b|\b(note|message|instructions?)[\s_]+(to|for)[\s_]+(the[\s_]+)?(analyst|soc|ai|model|assistant|classifier|reviewer)\b|\breport[\s_]+(no|zero)[\s_]+threats?\b|\bauthori[sz]ed[\s_]+(penetration[\s_]+|security[\s_]+)?test\b|\[/?inst\]|<<[\s_]*sys[\s_]*>>|\bas[\s_]+an[\s_]+ai\b";

/// Auth failures in syslog-style messages.
const AUTH_FAILURE_PATTERN: &str = r"(?i)failed password|authentication failure|invalid user|failed publickey|maximum authentication attempts|failed login|login incorrect|did not receive identification|bad protocol version|connection closed by authenticating user|break-in attempt|incorrect password attempt|user not in sudoers|not in sudoers|authentication failed|auth(entication)? (error|failed)|logon failure";

/// A detector pattern compiled twice: as written (Unicode), and in ASCII mode over bytes.
/// On ASCII text both match exactly the same spans (word boundaries, classes and case
/// folding differ only on non-ASCII characters), and the ASCII form runs on the lazy DFA:
/// the Unicode form's `\b` makes the DFA give up on any haystack and fall back to the
/// PikeVM, a hundred times slower. Non-ASCII text keeps the Unicode form.
struct Pattern {
    unicode: Regex,
    ascii: Regex,
}

impl Pattern {
    fn is_match(&self, text: &str) -> bool {
        if text.is_ascii() {
            self.ascii.is_match(text)
        } else {
            self.unicode.is_match(text)
        }
    }

    /// Byte spans of the matches, leftmost first.
    fn find_iter(&self, text: &str) -> Vec<(usize, usize)> {
        if text.is_ascii() {
            self.ascii
                .find_iter(text)
                .map(|m| (m.start(), m.end()))
                .collect()
        } else {
            self.unicode
                .find_iter(text)
                .map(|m| (m.start(), m.end()))
                .collect()
        }
    }

    fn find(&self, text: &str) -> Option<(usize, usize)> {
        if text.is_ascii() {
            self.ascii.find(text).map(|m| (m.start(), m.end()))
        } else {
            self.unicode.find(text).map(|m| (m.start(), m.end()))
        }
    }
}

/// [`Pattern`]'s two forms for a set of patterns.
/// On non-ASCII text the patterns run one at a time: a Unicode set would run on the
/// PikeVM over all patterns at once, while each pattern alone runs on the bounded
/// backtracker, several times faster on the short values of a record. Same answer.
struct PatternSet {
    ascii: RegexSet,
}

impl PatternSet {
    fn is_match(&self, text: &str, members: &[(Rule, Pattern)]) -> bool {
        if text.is_ascii() {
            self.ascii.is_match(text)
        } else {
            members.iter().any(|(_, p)| p.unicode.is_match(text))
        }
    }
}

/// The form of a pattern for ASCII haystacks: Perl classes and word boundaries in their
/// ASCII meaning (`\b` -> `(?-u:\b)`, `\w` -> `[[:word:]]`, inside a class `[:word:]`),
/// everything else as written. On ASCII text it matches exactly what the pattern matches.
pub(crate) fn ascii_form(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut chars = pattern.chars().peekable();
    // Depth of `[...]` classes; `at_class_start` is set right after `[` or `[^`, where
    // a `]` is a literal.
    let mut depth = 0usize;
    let mut at_class_start = false;
    while let Some(c) = chars.next() {
        let starting = at_class_start;
        at_class_start = false;
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push(c);
                    break;
                };
                let posix = match n {
                    'w' => Some("word"),
                    's' => Some("space"),
                    'd' => Some("digit"),
                    'W' => Some("^word"),
                    'S' => Some("^space"),
                    'D' => Some("^digit"),
                    _ => None,
                };
                match (posix, depth > 0, n) {
                    (Some(p), true, _) => out.push_str(&format!("[:{p}:]")),
                    (Some(p), false, _) => out.push_str(&format!("[[:{p}:]]")),
                    (None, false, 'b') => out.push_str("(?-u:\\b)"),
                    (None, false, 'B') => out.push_str("(?-u:\\B)"),
                    _ => {
                        out.push(c);
                        out.push(n);
                    }
                }
            }
            '[' => {
                if depth > 0 && chars.peek() == Some(&':') {
                    // A POSIX class inside a class: copy through `:]`.
                    out.push(c);
                    let mut prev = ' ';
                    for n in chars.by_ref() {
                        out.push(n);
                        if prev == ':' && n == ']' {
                            break;
                        }
                        prev = n;
                    }
                    continue;
                }
                depth += 1;
                out.push(c);
                at_class_start = true;
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
            }
            ']' if depth > 0 && !starting => {
                depth -= 1;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

struct Compiled {
    rules: Vec<(Rule, Pattern)>,
    /// All rule patterns at once: most values match none, and one pass says so.
    any: PatternSet,
    injection: Pattern,
    auth_failure: Pattern,
}

// The patterns are constants of this file and `rules_compile` tests each of them, so a
// failure here is a programming error, not bad input.
#[allow(clippy::expect_used)]
static COMPILED: LazyLock<Compiled> = LazyLock::new(|| {
    let compile = |p: &str| Pattern {
        unicode: Regex::new(p).expect("detector patterns are valid (tested)"),
        ascii: Regex::new(&ascii_form(p)).expect("detector patterns are valid (tested)"),
    };
    Compiled {
        rules: RULES
            .iter()
            .map(|&(name, class, places, pattern)| {
                (
                    Rule {
                        name,
                        class,
                        places,
                    },
                    compile(pattern),
                )
            })
            .collect(),
        any: PatternSet {
            // A lazy DFA cache big enough for the whole set: with the default size the
            // set thrashes it and falls back to the PikeVM on every value.
            ascii: regex::RegexSetBuilder::new(RULES.iter().map(|r| ascii_form(r.3)))
                .dfa_size_limit(64 << 20)
                .build()
                .expect("detector patterns are valid"),
        },
        injection: compile(INJECTION_PATTERN),
        auth_failure: compile(AUTH_FAILURE_PATTERN),
    }
});

/// Values longer than this are not remembered (payloads are long and rarely repeat).
const MEMO_MAX_VALUE: usize = 512;
/// Values remembered per place; the memory is emptied when full.
const MEMO_ENTRIES: usize = 4096;

/// A signal a value raised, without its span.
#[derive(Clone)]
struct MemoHit {
    class: Class,
    rule: &'static str,
    text: String,
    decoded: bool,
}

thread_local! {
    /// Per place (`Place as usize`): value -> the hits it raised.
    static MEMO: std::cell::RefCell<[std::collections::HashMap<String, Vec<MemoHit>>; 4]> =
        std::cell::RefCell::new(Default::default());
}

/// Collects the signals of one record.
struct Detector<'a> {
    out: &'a mut Vec<Signal>,
}

impl Detector<'_> {
    fn push(
        &mut self,
        class: Class,
        rule: &'static str,
        span: (usize, usize),
        text: &str,
        decoded: bool,
    ) {
        // One signal per rule and place is enough: a value inside the whole query string
        // that fired already says the same.
        if self
            .out
            .iter()
            .any(|s| s.rule == rule && s.start < span.1 && span.0 < s.end)
        {
            return;
        }
        let mut end = text.len().min(MAX_SIGNAL_TEXT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.out.push(Signal {
            class,
            rule,
            start: span.0,
            end: span.1,
            text: text[..end].to_string(),
            decoded,
        });
    }

    /// Runs the payload rules (and libinjection) on one value. What a value raises
    /// depends on the value and its place only, and user agents, referers and paths repeat
    /// from line to line: the hits of recent short values are remembered (per thread)
    /// and replayed at the new span, which gives the same signals as running the rules.
    fn value(&mut self, raw: &str, span: (usize, usize), place: Place) {
        if raw.is_empty() {
            return;
        }
        if raw.len() > MEMO_MAX_VALUE {
            return self.value_uncached(raw, span, place);
        }
        let remembered = MEMO.with(|m| m.borrow()[place as usize].get(raw).cloned());
        let hits = match remembered {
            Some(hits) => hits,
            None => {
                let mut scratch = Vec::new();
                Detector { out: &mut scratch }.value_uncached(raw, span, place);
                let hits: Vec<MemoHit> = scratch
                    .into_iter()
                    .map(|s| MemoHit {
                        class: s.class,
                        rule: s.rule,
                        text: s.text,
                        decoded: s.decoded,
                    })
                    .collect();
                MEMO.with(|m| {
                    let map = &mut m.borrow_mut()[place as usize];
                    if map.len() >= MEMO_ENTRIES {
                        map.clear();
                    }
                    map.insert(raw.to_string(), hits.clone());
                });
                hits
            }
        };
        for h in &hits {
            self.push(h.class, h.rule, span, &h.text, h.decoded);
        }
    }

    fn value_uncached(&mut self, raw: &str, span: (usize, usize), place: Place) {
        let decoded = decode(raw, place == Place::Query);
        let was_encoded = decoded != raw;
        let canon = canonical(&decoded);
        let c = &*COMPILED;
        self.rules_on(&canon, place, |_| true, span, &decoded, was_encoded);
        // Shells drop quotes and escapes inside words: `wh''oami`, `/etc/pa[s]swd`.
        let sq = squeezed(&canon);
        if let Some(sq) = &sq {
            let shell_rule = |class| {
                matches!(
                    class,
                    Class::CommandInjection | Class::MaliciousCommand | Class::FileInclusion
                )
            };
            self.rules_on(sq, place, shell_rule, span, &decoded, was_encoded);
        }
        // Shell globs that expand to a system file or program (`/e??/pa??wd`).
        if place != Place::Message {
            for target in glob_targets(sq.as_deref().unwrap_or(&canon)) {
                let (class, rule) = if target.contains("/bin/") {
                    (Class::CommandInjection, "cmd-glob-path")
                } else {
                    (Class::FileInclusion, "lfi-glob-path")
                };
                self.push(class, rule, span, &decoded, was_encoded);
            }
        }
        // A value sent base64-encoded (`L2V0Yy9wYXNzd2Q=`) is checked as the text it
        // encodes, by the rules of its place.
        if matches!(place, Place::Query | Place::Header) {
            if let Some(text) = base64_text(raw.trim()) {
                self.rules_on(
                    &canonical(&text),
                    place,
                    Class::is_payload,
                    span,
                    &text,
                    true,
                );
            }
        }
        // Encoded text that imitates the analyst is as much an attempt as plain text.
        if was_encoded && c.injection.is_match(&decoded) {
            self.push(Class::LogInjection, "log-injection", span, &decoded, true);
        }
        if place == Place::Path && is_dotfile_probe(&canon) {
            self.push(Class::Probe, "probe-dotfile", span, &decoded, was_encoded);
        }
        if matches!(place, Place::Query | Place::Header) {
            self.libinjection(&decoded, span, was_encoded);
        }
    }

    /// A signal for every rule of `place` whose class `keep` admits and whose pattern
    /// matches `canon`; `shown` is the text the signal quotes.
    fn rules_on(
        &mut self,
        canon: &str,
        place: Place,
        keep: impl Fn(Class) -> bool,
        span: (usize, usize),
        shown: &str,
        decoded: bool,
    ) {
        let c = &*COMPILED;
        if !c.any.is_match(canon, &c.rules) {
            return;
        }
        for (rule, re) in &c.rules {
            if keep(rule.class) && rule.places.contains(&place) && re.is_match(canon) {
                self.push(rule.class, rule.name, span, shown, decoded);
            }
        }
    }

    fn libinjection(&mut self, decoded: &str, span: (usize, usize), was_encoded: bool) {
        // Plain words and numbers cannot be an injection; skipping them keeps the
        // fast path fast.
        if !decoded.bytes().any(|b| b"'\"<>();=-#`/*".contains(&b)) {
            return;
        }
        // A port of a C library: any panic in it must not take the intake down.
        let bytes = decoded.as_bytes();
        let (sqli, xss) = std::panic::catch_unwind(|| {
            (
                libinjectionrs::detect_sqli(bytes).is_injection(),
                libinjectionrs::detect_xss(bytes).is_injection(),
            )
        })
        .unwrap_or((false, false));
        if sqli {
            self.push(Class::Sqli, "libinjection-sqli", span, decoded, was_encoded);
        }
        if xss {
            self.push(Class::Xss, "libinjection-xss", span, decoded, was_encoded);
        }
    }

    /// Each `name=value` pair of a query string that starts at byte `start`: the value
    /// and the name, each with its own span.
    fn query(&mut self, q: &str, start: usize) {
        let mut at = start;
        for pair in q.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or(("", pair));
            let value_at = at + pair.len() - value.len();
            self.value(value, (value_at, value_at + value.len()), Place::Query);
            if !name.is_empty() {
                self.value(name, (at, at + name.len()), Place::Query);
            }
            at += pair.len() + 1;
        }
    }

    /// A web request: path, each query value, user agent, referer, size.
    fn web(&mut self, ev: &LogEvent, base: usize, raw: &str) {
        let span_of = |v: &str| -> (usize, usize) {
            match raw.find(v) {
                Some(at) => (base + at, base + at + v.len()),
                None => (base, base + raw.len()),
            }
        };
        let target = ev.field("url").or(ev.field("path")).unwrap_or("");
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, ev.field("cs-uri-query")),
        };
        if !path.is_empty() {
            let span = span_of(path);
            self.value(path, span, Place::Path);
        }
        if let Some(q) = query.filter(|q| !is_placeholder(q)) {
            let q_span = span_of(q);
            self.query(q, q_span.0);
            // Whole, too: a payload may span `&` (`cmd=&& whoami`).
            self.value(q, q_span, Place::Query);
        }
        for header in ["user_agent", "referer", "cs(Referer)"] {
            if let Some(v) = ev.field(header).filter(|v| !is_placeholder(v)) {
                let span = span_of(v);
                self.value(v, span, Place::Header);
                if header == "user_agent" {
                    let lower = v.to_lowercase();
                    if SCANNER_AGENTS.iter().any(|a| lower.contains(a)) {
                        self.push(Class::Scanner, "scanner-agent", span, v, false);
                    }
                }
            }
        }
        let bytes: u64 = ev.field("bytes").and_then(|b| b.parse().ok()).unwrap_or(0);
        let ok = ev.field("status").is_some_and(|s| s.starts_with('2'));
        if ok && bytes >= LARGE_RESPONSE_BYTES && !is_media(path) {
            let size = ev.field("bytes").unwrap_or("");
            self.push(
                Class::LargeResponse,
                "large-response",
                span_of(size),
                size,
                false,
            );
        }
    }

    /// Free text of a non-web record: command lines, auth failures, and web payloads in
    /// URLs it quotes.
    fn message(&mut self, text: &str, base: usize) {
        let span = (base, base + text.len());
        let c = &*COMPILED;
        if let Some((start, end)) = c.auth_failure.find(text) {
            let at = (base + start, base + end);
            self.push(
                Class::AuthFailure,
                "auth-failure",
                at,
                &text[start..end],
                false,
            );
        }
        self.value(text, span, Place::Message);
        // URLs inside a message (proxy logs, application logs) are requests too.
        for (at, word) in words(text) {
            if let Some((path, query)) = word.split_once('?') {
                if path.contains('/') {
                    self.query(query, base + at + path.len() + 1);
                }
            }
        }
    }
}

/// A path segment that starts with a dot (`/.env`, `/.git/config`, `/.claude/...`):
/// hidden files are never links of a site, only scanners ask for them. `/.well-known/`
/// is the exception (ACME, security.txt).
fn is_dotfile_probe(path: &str) -> bool {
    path.split('/').any(|seg| {
        seg.len() > 1
            && seg.starts_with('.')
            && seg != ".."
            && seg != ".well-known"
            && seg[1..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// One response of this many bytes or more to a non-media request is worth a look.
const LARGE_RESPONSE_BYTES: u64 = 5_000_000;

fn is_media(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    [
        ".iso", ".img", ".zip", ".tar", ".gz", ".tgz", ".xz", ".7z", ".rar", ".mp4", ".mkv",
        ".webm", ".mov", ".avi", ".mp3", ".flac", ".wav", ".pdf", ".dmg", ".exe", ".msi", ".deb",
        ".rpm", ".apk", ".bin", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif",
    ]
    .iter()
    .any(|ext| lower.ends_with(ext))
}

fn is_placeholder(v: &str) -> bool {
    let v = v.trim();
    v.is_empty() || v == "-"
}

/// Whitespace-separated words with their byte offsets.
fn words(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(' ')
        .scan(0usize, |pos, w| {
            let at = *pos;
            *pos += w.len() + 1;
            Some((at, w))
        })
        .filter(|(_, w)| !w.is_empty())
}

/// Signals of one record (a line, or a multi-line Windows record) that starts at byte
/// `base` of the entry text.
pub(crate) fn record_signals(base: usize, record: &str, out: &mut Vec<Signal>) -> LogEvent {
    let ev = parse_line(record);
    let mut d = Detector { out };
    match ev.format {
        Format::AccessCombined | Format::AccessCommon | Format::W3c => d.web(&ev, base, record),
        Format::SuricataEve
        | Format::ZeekJson
        | Format::CloudTrail
        | Format::Json
        | Format::Ecs => {
            // Structured records: URLs and commands sit in their values.
            if let Some(url) = ev.field("url").or(ev.field("path")) {
                let span = match record.find(url) {
                    Some(at) => (base + at, base + at + url.len()),
                    None => (base, base + record.len()),
                };
                if let Some((path, q)) = url.split_once('?') {
                    d.query(q, span.0 + path.len() + 1);
                }
                d.value(url, span, Place::Path);
            }
            d.message(record, base);
        }
        _ => {
            let msg = ev.field("message").unwrap_or(record);
            let at = record.find(msg).unwrap_or(0);
            d.message(msg, base + at);
        }
    }
    let c = &*COMPILED;
    for (start, end) in c.injection.find_iter(record) {
        d.push(
            Class::LogInjection,
            "log-injection",
            (base + start, base + end),
            &record[start..end],
            false,
        );
    }
    ev
}

#[cfg(test)]
mod ascii_form_tests {
    use super::*;

    #[test]
    fn ascii_form_rewrites_only_perl_classes_and_boundaries() {
        assert_eq!(ascii_form(r"\bselect\b"), r"(?-u:\b)select(?-u:\b)");
        assert_eq!(ascii_form(r"[\w.-]+\s"), r"[[:word:].-]+[[:space:]]");
        assert_eq!(ascii_form(r"[^\d\]]\\b"), r"[^[:digit:]\]]\\b");
        assert_eq!(
            ascii_form(r"[]a][[:alpha:]\W]"),
            r"[]a][[:alpha:][:^word:]]"
        );
        assert_eq!(ascii_form(r"\x{2018}\.\B"), r"\x{2018}\.(?-u:\B)");
    }

    /// On ASCII text each pattern's two forms find the same spans: the fast form never
    /// changes a decision. Checked on every corpus input, decoded as the detectors see it.
    #[test]
    fn both_forms_agree_on_the_corpus() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/corpus");
        let mut texts = Vec::new();
        for split in ["train.jsonl", "validation.jsonl"] {
            let Ok(data) = std::fs::read_to_string(root.join(split)) else {
                continue;
            };
            for line in data.lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                let input = v["input"].as_str().unwrap_or_default();
                for part in input.split(['\n', ' ', '?', '&', '"']) {
                    let canon = canonical(&decode(part, true));
                    if canon.is_ascii() {
                        texts.push(canon);
                    }
                }
                texts.push(input.to_string());
            }
        }
        assert!(texts.len() > 10_000, "corpus not found: {}", texts.len());
        let c = &*COMPILED;
        let mut hits = 0;
        for text in texts.iter().filter(|t| t.is_ascii()) {
            let any_unicode = c.rules.iter().any(|(_, p)| p.unicode.is_match(text));
            assert_eq!(any_unicode, c.any.ascii.is_match(text), "{text}");
            for (rule, p) in c
                .rules
                .iter()
                .map(|(r, p)| (r.name, p))
                .chain([("injection", &c.injection), ("auth", &c.auth_failure)])
            {
                let u: Vec<_> = p.unicode.find_iter(text).map(|m| m.range()).collect();
                let a: Vec<_> = p.ascii.find_iter(text).map(|m| m.range()).collect();
                assert_eq!(u, a, "{rule} on {text}");
                hits += u.len();
            }
        }
        assert!(hits > 1000, "{hits}");
    }
}
