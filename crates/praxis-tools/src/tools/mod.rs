//! The built-in coding tools.

pub mod delegate;
pub mod fs_patch;
pub mod fs_read;
pub mod fs_write;
pub mod grep;
pub mod http;
pub mod list_files;
pub mod repo_map;
pub mod shell;
pub mod test_run;
