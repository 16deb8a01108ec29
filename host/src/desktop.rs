//! The desktop a session shows on a display it started: something a user recognises and can
//! use, sized to the browser window (the display follows it; see [`crate::resize`]).
//!
//! The default ([`DEFAULT_WM`], [`DEFAULT_APP`]):
//! * **openbox** with a generated config (Debian's `rc.xml`, our own root menu: right-click
//!   the background for Terminal, Reconfigure, …), a blue-grey background (`xsetroot`);
//! * a **tint2** panel at the bottom (a Terminal button, the task list, a clock), when tint2 is
//!   installed (`scripts/setup.sh` installs it; without it the desktop still works);
//! * a **terminal**: xterm with DejaVu Sans Mono at 12 pt (not the tiny bitmap fallback),
//!   maximised, so it fills the desktop at whatever size the window gives it.
//!
//! Other `--wm`/`--app` values are shell-split and started as they are; empty starts nothing.
//! Every process is started through [`VirtualDisplay::spawn_app`], so it dies with the
//! display. The config files live in the display's private directory.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::display::{DisplayError, VirtualDisplay};

/// `--wm` value that starts the configured openbox (and the panel).
pub const DEFAULT_WM: &str = control::DEFAULT_WM;
/// `--app` value that starts the readable, maximised terminal.
pub const DEFAULT_APP: &str = control::DEFAULT_APP;
/// The X resource name of the first terminal (openbox maximises it).
const TERMINAL_NAME: &str = "edgedesk-terminal";
/// The terminal's command line (without the geometry and name the callers add).
const TERMINAL: &[&str] = &[
    "xterm",
    "-fa",
    "DejaVu Sans Mono",
    "-fs",
    "12",
    "-bg",
    "#1d1f21",
    "-fg",
    "#d0d0d0",
    "-title",
    "Terminal",
];
const BACKGROUND: &str = "#3b5b6e";

/// Errors of starting the desktop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DesktopError {
    #[error("cannot write the desktop's config {path}: {source}")]
    Config {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {what}: {source}")]
    Start {
        what: &'static str,
        #[source]
        source: DisplayError,
    },
}

/// Starts the window manager `wm` and then the program `app` on `display` (see the module
/// docs for the defaults).
pub fn start(display: &VirtualDisplay, wm: &str, app: &str) -> Result<(), DesktopError> {
    let wm = wm.trim();
    if wm == DEFAULT_WM {
        start_openbox(display)?;
    } else if !wm.is_empty() {
        spawn_words(display, wm, "the window manager")?;
    }
    let app = app.trim();
    if app == DEFAULT_APP {
        let mut cmd = Command::new(TERMINAL[0]);
        cmd.args(&TERMINAL[1..])
            .args(["-name", TERMINAL_NAME])
            .stdin(std::process::Stdio::null());
        // The shell starts at home, not wherever edgedesk was started.
        if let Some(home) = std::env::var_os("HOME").filter(|h| Path::new(h).is_dir()) {
            cmd.current_dir(home);
        }
        display
            .spawn_command(&mut cmd)
            .map(drop)
            .map_err(|source| DesktopError::Start {
                what: "the terminal (xterm)",
                source,
            })?;
    } else if !app.is_empty() {
        spawn_words(display, app, "the app")?;
    }
    Ok(())
}

fn spawn_words(
    display: &VirtualDisplay,
    command: &str,
    what: &'static str,
) -> Result<(), DesktopError> {
    let mut words = command.split_whitespace();
    let program = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    display
        .spawn_app(program, &args)
        .map(drop)
        .map_err(|source| DesktopError::Start { what, source })
}

fn write(path: &Path, contents: &str) -> Result<(), DesktopError> {
    fs::write(path, contents).map_err(|source| DesktopError::Config {
        path: path.display().to_string(),
        source,
    })
}

fn start_openbox(display: &VirtualDisplay) -> Result<(), DesktopError> {
    let dir = display.private_dir();
    let menu = dir.join("openbox-menu.xml");
    write(&menu, &menu_xml())?;
    let rc = dir.join("openbox-rc.xml");
    let system = fs::read_to_string("/etc/xdg/openbox/rc.xml").ok();
    write(&rc, &rc_xml(system.as_deref(), &menu.display().to_string()))?;
    display
        .spawn_app("openbox", ["--config-file".as_ref(), rc.as_os_str()])
        .map_err(|source| DesktopError::Start {
            what: "the window manager (openbox)",
            source,
        })?;
    if which("xsetroot") {
        let _ = display.spawn_app("xsetroot", ["-solid", BACKGROUND]);
    }
    if which("tint2") {
        let panel = dir.join("tint2rc");
        write(&panel, &tint2rc())?;
        if let Err(e) = display.spawn_app("tint2", ["-c".as_ref(), panel.as_os_str()]) {
            tracing::warn!(error = %e, "the panel (tint2) did not start; the desktop works without it");
        }
    } else {
        tracing::info!(
            "tint2 is not installed: the desktop has no panel (scripts/setup.sh installs it)"
        );
    }
    Ok(())
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// The terminal command line as one shell string (for the menu and the panel).
fn terminal_command() -> String {
    TERMINAL
        .iter()
        .map(|w| {
            if w.contains([' ', '#']) {
                format!("'{w}'")
            } else {
                (*w).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        + " -geometry 100x30"
}

/// openbox's config: the system's `rc.xml` (Debian's default bindings and theme) with our
/// menu instead of Debian's and a rule that maximises the first terminal; a minimal one when
/// the system has none.
pub fn rc_xml(system: Option<&str>, menu_path: &str) -> String {
    let rule = format!(
        "<application name=\"{TERMINAL_NAME}\"><maximized>true</maximized><focus>yes</focus></application>\n"
    );
    let menu_file = format!("<file>{}</file>", xml_escape(menu_path));
    match system {
        Some(rc) if rc.contains("</applications>") && rc.contains("<file>menu.xml</file>") => rc
            .replace("<file>/var/lib/openbox/debian-menu.xml</file>", "")
            .replace("<file>menu.xml</file>", &menu_file)
            .replacen("</applications>", &format!("{rule}</applications>"), 1),
        _ => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <openbox_config xmlns=\"http://openbox.org/3.4/rc\">\n\
             <mouse><context name=\"Root\"><mousebind button=\"Right\" action=\"Press\">\
             <action name=\"ShowMenu\"><menu>root-menu</menu></action></mousebind></context></mouse>\n\
             <menu>{menu_file}</menu>\n<applications>{rule}</applications>\n</openbox_config>\n"
        ),
    }
}

fn menu_xml() -> String {
    let term = xml_escape(&terminal_command());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <openbox_menu xmlns=\"http://openbox.org/3.4/menu\">\n\
         <menu id=\"root-menu\" label=\"edgedesk\">\n\
         <item label=\"Terminal\"><action name=\"Execute\"><command>{term}</command></action></item>\n\
         <item label=\"Top (processes)\"><action name=\"Execute\"><command>{term} -e top</command></action></item>\n\
         <separator />\n\
         <item label=\"Reconfigure\"><action name=\"Reconfigure\" /></item>\n\
         </menu>\n</openbox_menu>\n"
    )
}

fn tint2rc() -> String {
    format!(
        "# edgedesk's panel: a Terminal button, the task list and a clock.\n\
         panel_items = PTC\n\
         panel_position = bottom center horizontal\n\
         panel_size = 100% 34\n\
         panel_padding = 6 3 6\n\
         panel_background_id = 1\n\
         wm_menu = 1\n\
         strut_policy = follow_size\n\
         rounded = 0\n\
         border_width = 0\n\
         background_color = #1d2a33 100\n\
         border_color = #000000 0\n\
         rounded = 3\n\
         border_width = 0\n\
         background_color = #4a6b80 100\n\
         border_color = #000000 0\n\
         taskbar_mode = single_desktop\n\
         task_text = 1\n\
         task_icon = 0\n\
         task_maximum_size = 220 28\n\
         task_padding = 8 4 4\n\
         task_font = DejaVu Sans 10\n\
         task_font_color = #e0e0e0 100\n\
         task_active_background_id = 2\n\
         time1_format = %H:%M\n\
         clock_font_color = #e0e0e0 100\n\
         time1_font = DejaVu Sans 10\n\
         button = new\n\
         button_text = Terminal\n\
         button_font = DejaVu Sans Bold 10\n\
         button_font_color = #ffffff 100\n\
         button_background_id = 2\n\
         button_padding = 10 4\n\
         button_lclick_command = {}\n",
        terminal_command()
    )
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openbox_config_takes_the_system_one_with_our_menu_and_rule() {
        let system = "<menu>\n  <file>/var/lib/openbox/debian-menu.xml</file>\n  <file>menu.xml</file>\n</menu>\n<applications>\n</applications>\n";
        let rc = rc_xml(Some(system), "/tmp/x/menu.xml");
        assert!(rc.contains("<file>/tmp/x/menu.xml</file>"), "{rc}");
        assert!(!rc.contains("debian-menu"), "{rc}");
        assert!(rc.contains(&format!(
            "<application name=\"{TERMINAL_NAME}\"><maximized>true"
        )));
        // Without a usable system config: a minimal one with the root menu on right-click.
        let rc = rc_xml(None, "/m.xml");
        assert!(rc.contains("<menu>root-menu</menu>") && rc.contains("<file>/m.xml</file>"));
    }

    #[test]
    fn the_terminal_has_a_readable_font() {
        let t = terminal_command();
        assert!(t.starts_with("xterm -fa 'DejaVu Sans Mono' -fs 12 "), "{t}");
        assert!(menu_xml().contains("-bg '#1d1f21'"));
        assert!(tint2rc().contains("button_lclick_command = xterm"));
    }
}
