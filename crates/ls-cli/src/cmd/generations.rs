//! `litestream generations`: each replica's generations, the time range each covers and how
//! far its newest file lags behind the database.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context as _;

use crate::args::{Command, ListArgs};
use crate::client::Replica;
use crate::cmd::{ListSource, ListTarget, Status, log_list_error, parse, single_arg, write_stdout};
use crate::duration::{GoDuration, truncate_lag};
use crate::table::Table;

/// Go's zero `time.Time` (0001-01-01T00:00:00Z) in seconds from the Unix epoch: what
/// Litestream prints as the bounds of a generation without files.
const GO_ZERO_TIME_UNIX_SECONDS: i64 = -62_135_596_800;

/// Runs `litestream generations`.
///
/// # Errors
/// For bad arguments or config, a database file that does not exist (config form), and a
/// missing replica root in URL form. Other listing errors are logged and skipped.
pub(crate) async fn run(command: Command, args: &[OsString]) -> anyhow::Result<Status> {
    let Some(args) = parse::<ListArgs>(command, args)? else {
        return Ok(Status::Usage);
    };
    let arg = single_arg(&args.args, "database path or replica URL required")?;
    let target = ListTarget::resolve(&args.config, arg, args.replica.as_deref())?;
    let reference = match &target.source {
        ListSource::Url(_) => unix_nanos(SystemTime::now()),
        ListSource::Config { db_path } => unix_nanos(db_updated_at(db_path)?),
    };
    let mut table = Table::new(&["name", "generation", "lag", "start", "end"]);
    let result = fill(&target, reference, &mut table).await;
    let mut out = Vec::new();
    table.write_to(&mut out)?;
    write_stdout(&out)?;
    result.map(|()| Status::Success)
}

async fn fill(target: &ListTarget, reference: i128, table: &mut Table) -> anyhow::Result<()> {
    for replica in &target.replicas {
        let Some(generations) = target
            .generations(replica, "cannot list generations")
            .await?
        else {
            continue;
        };
        for generation in generations {
            let bounds = match time_bounds(replica, &generation).await {
                Ok(bounds) => bounds,
                Err(err) => {
                    log_list_error("cannot determine generation time bounds", &err);
                    continue;
                }
            };
            let (start, end) = match bounds {
                Some((start, end)) => (unix_nanos(start), unix_nanos(end)),
                None => {
                    let zero = i128::from(GO_ZERO_TIME_UNIX_SECONDS) * 1_000_000_000;
                    (zero, zero)
                }
            };
            table.push(vec![
                replica.name.clone(),
                generation.to_string(),
                truncate_lag(go_sub(reference, end)).to_string(),
                format_unix_nanos(start),
                format_unix_nanos(end),
            ]);
        }
    }
    Ok(())
}

/// The oldest and newest `created_at` over a generation's snapshots and WAL segments
/// (Litestream's `Replica.GenerationTimeBounds`); `None` when it has neither.
async fn time_bounds(
    replica: &Replica,
    generation: &ls_core::Generation,
) -> Result<Option<(SystemTime, SystemTime)>, ls_core::ClientError> {
    let snapshots = replica.client.snapshots(generation).await?;
    let segments = replica.client.wal_segments(generation).await?;
    let times = snapshots
        .iter()
        .map(|s| s.created_at)
        .chain(segments.iter().map(|s| s.created_at));
    Ok(times.fold(None, |bounds, time| match bounds {
        None => Some((time, time)),
        Some((start, end)) => Some((start.min(time), end.max(time))),
    }))
}

/// The later of the database's and its `-wal` file's mtimes (Litestream's `DB.UpdatedAt`).
///
/// # Errors
/// When the database file cannot be stat'ed, or the WAL file fails for another reason than
/// not existing.
fn db_updated_at(db_path: &Path) -> anyhow::Result<SystemTime> {
    let stat = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified());
    let db_time = stat(db_path).with_context(|| format!("stat {}", db_path.display()))?;
    let mut wal_path = db_path.as_os_str().to_owned();
    wal_path.push("-wal");
    let wal_path = Path::new(&wal_path);
    match stat(wal_path) {
        Ok(wal_time) => Ok(db_time.max(wal_time)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(db_time),
        Err(err) => Err(err).with_context(|| format!("stat {}", wal_path.display())),
    }
}

/// Nanoseconds since the Unix epoch, negative before it.
fn unix_nanos(time: SystemTime) -> i128 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// `a - b` saturated to the range of a Go `time.Duration`, as Go's `Time.Sub`.
fn go_sub(a: i128, b: i128) -> GoDuration {
    let nanos = a
        .saturating_sub(b)
        .clamp(i128::from(i64::MIN), i128::from(i64::MAX));
    GoDuration(i64::try_from(nanos).expect("clamped to the i64 range"))
}

/// A time given as Unix nanoseconds, as RFC 3339 in UTC without fraction.
fn format_unix_nanos(nanos: i128) -> String {
    let seconds = nanos.div_euclid(1_000_000_000);
    let subsec = nanos.rem_euclid(1_000_000_000);
    let (Ok(seconds), Ok(subsec)) = (i64::try_from(seconds), u32::try_from(subsec)) else {
        return String::from("0001-01-01T00:00:00Z");
    };
    match chrono::DateTime::from_timestamp(seconds, subsec) {
        Some(time) => time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => String::from("0001-01-01T00:00:00Z"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_sub_saturates_like_go_time_sub() {
        let zero = i128::from(GO_ZERO_TIME_UNIX_SECONDS) * 1_000_000_000;
        let now = 1_795_634_888_000_000_000_i128;
        assert_eq!(go_sub(now, zero), GoDuration(i64::MAX));
        assert_eq!(
            truncate_lag(go_sub(now, zero)).to_string(),
            "2562047h47m16s"
        );
        assert_eq!(go_sub(zero, now), GoDuration(i64::MIN));
        assert_eq!(
            go_sub(now, now - 40_500_000_000),
            GoDuration(40_500_000_000)
        );
    }

    #[test]
    fn format_unix_nanos_handles_go_zero_time_and_negative() {
        let zero = i128::from(GO_ZERO_TIME_UNIX_SECONDS) * 1_000_000_000;
        assert_eq!(format_unix_nanos(zero), "0001-01-01T00:00:00Z");
        assert_eq!(format_unix_nanos(-1), "1969-12-31T23:59:59Z");
        assert_eq!(
            format_unix_nanos(1_795_634_888_999_999_999),
            "2026-11-25T19:28:08Z"
        );
    }

    #[test]
    fn unix_nanos_round_trips_before_and_after_epoch() {
        let after = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(5);
        assert_eq!(unix_nanos(after), 5);
        let before = SystemTime::UNIX_EPOCH - std::time::Duration::from_nanos(5);
        assert_eq!(unix_nanos(before), -5);
    }
}
