//! `broker-lite passwd [--delete] FILE USER`: add a user, change a password, or
//! delete a user. The password is asked twice on a terminal; otherwise one line
//! is read from standard input (`echo secret | broker-lite passwd FILE alice`).

use std::io::{self, BufRead, IsTerminal};
use std::path::Path;
use std::process::ExitCode;

use super::hash::{PasswordHash, DEFAULT_ITERATIONS};
use super::passwd::{self, Change};

/// Run the command; messages go to stdout, errors to stderr with exit code 1.
pub fn passwd_command(file: &Path, user: &str, delete: bool) -> ExitCode {
    match run(file, user, delete) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("broker-lite passwd: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(file: &Path, user: &str, delete: bool) -> Result<String, String> {
    let shown = file.display();
    passwd::check_user_name(user).map_err(|why| format!("{why}; {shown} not changed"))?;
    if delete {
        return match passwd::delete(file, user) {
            Ok(Change::NotFound) => Err(format!("no user {user:?} in {shown}")),
            Ok(_) => Ok(format!("deleted {user:?} from {shown}")),
            Err(e) => Err(format!("{shown}: {e}")),
        };
    }
    let password = read_password()?;
    let hash = PasswordHash::new(password.as_bytes(), DEFAULT_ITERATIONS)
        .map_err(|e| format!("no random salt: {e}"))?;
    match passwd::set(file, user, &hash) {
        Ok(Change::Added) => Ok(format!("added {user:?} to {shown}")),
        Ok(_) => Ok(format!("changed the password of {user:?} in {shown}")),
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

/// Twice on a terminal, without echo; else the first line of standard input.
fn read_password() -> Result<String, String> {
    let password = if io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Password again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ; nothing changed".into());
        }
        first
    } else {
        let mut line = String::new();
        io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
        strip_line_end(&line).to_string()
    };
    if password.is_empty() {
        return Err("empty password; nothing changed".into());
    }
    Ok(password)
}

fn strip_line_end(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::strip_line_end;

    #[test]
    fn only_the_line_end_is_taken_off_the_password() {
        assert_eq!(strip_line_end("secret\n"), "secret");
        assert_eq!(strip_line_end("secret\r\n"), "secret");
        assert_eq!(strip_line_end(" sp ace \n"), " sp ace ");
        assert_eq!(strip_line_end("no end"), "no end");
    }
}
