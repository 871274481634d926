pub struct Playbook;
pub struct Play;
pub struct Advice;
pub struct PlaybookError;
