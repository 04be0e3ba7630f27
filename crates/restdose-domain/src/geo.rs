//! Geography: coordinates, great-circle distances and postcode gazetteers.
//!
//! A [`Gazetteer`] maps the postcodes of one country to a representative point
//! (the centroid of the postcode area). Distances between postcodes are only
//! ever approximate, which is all the waitlist needs for "within N km".
//! Germany is built in; other countries are loaded from GeoNames postal-code
//! dumps (see [`parse_geonames`]) by the caller and passed to [`for_country`].

use std::collections::HashMap;
use std::sync::OnceLock;

use thiserror::Error;

/// Canonical form used for both user input and gazetteer keys: surrounding
/// whitespace removed, inner whitespace runs collapsed to one space, ASCII
/// letters uppercased (so "sw1a  1aa" and "SW1A 1AA" are the same code).
pub fn normalise(input: &str) -> String {
    input
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase()
}

/// Mean earth radius (IUGG), in kilometres.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// A WGS84 point in decimal degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    pub lat: f64,
    pub lon: f64,
}

/// Great-circle distance between two points in kilometres (haversine formula).
///
/// Treats the earth as a sphere; the error (< 0.5 %) is far below the
/// imprecision of using postcode centroids in the first place.
pub fn haversine_km(a: Coordinates, b: Coordinates) -> f64 {
    let (lat_a, lat_b) = (a.lat.to_radians(), b.lat.to_radians());
    let half_dlat = (lat_b - lat_a) / 2.0;
    let half_dlon = (b.lon - a.lon).to_radians() / 2.0;
    let h = half_dlat.sin().powi(2) + lat_a.cos() * lat_b.cos() * half_dlon.sin().powi(2);
    // Rounding can push h a hair above 1 for antipodal points; asin would give NaN.
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Postcodes of one country and their centroid coordinates.
///
/// Keys are stored normalised (see [`normalise`]), so lookups are
/// insensitive to case and surrounding/inner whitespace.
#[derive(Debug, Clone, Default)]
pub struct Gazetteer {
    country: String,
    entries: HashMap<String, Coordinates>,
}

impl Gazetteer {
    /// An empty gazetteer for `country` (ISO 3166-1 alpha-2, stored uppercased).
    pub fn new(country: &str) -> Self {
        Self {
            country: country.trim().to_ascii_uppercase(),
            entries: HashMap::new(),
        }
    }

    /// The ISO country code, uppercased, e.g. `"DE"`.
    pub fn country(&self) -> &str {
        &self.country
    }

    /// Coordinates of `code`, if known.
    pub fn lookup(&self, code: &str) -> Option<Coordinates> {
        // Fast path for already-normalised input (the usual case).
        self.entries
            .get(code)
            .or_else(|| self.entries.get(&normalise(code)))
            .copied()
    }

    /// Adds or replaces a postcode.
    pub fn insert(&mut self, code: String, c: Coordinates) {
        self.entries.insert(normalise(&code), c);
    }

    /// Number of postcodes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no postcodes are loaded (e.g. a non-German country before import).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Coordinates)> + '_ {
        self.entries.iter().map(|(code, c)| (code.as_str(), *c))
    }
}

/// The embedded German data; regenerate with `scripts/generate-postcodes.py`.
const DE_POSTCODES: &str = include_str!("../data/de-postcodes.csv");

/// A fresh gazetteer of all German postcodes, parsed from the embedded file.
///
/// Prefer [`builtin_germany`], which parses only once per process.
pub fn germany() -> Gazetteer {
    let mut gazetteer = Gazetteer::new("DE");
    // The file is generated and checked by a test, so malformed lines cannot
    // occur in practice; skipping them keeps this infallible without panicking.
    for line in DE_POSTCODES.lines() {
        if let Some((code, c)) = parse_csv_line(line) {
            gazetteer.insert(code.to_owned(), c);
        }
    }
    gazetteer
}

/// `postcode,lat,lon`; `None` for comments, blank or malformed lines.
fn parse_csv_line(line: &str) -> Option<(&str, Coordinates)> {
    if line.starts_with('#') {
        return None;
    }
    let mut fields = line.trim().split(',');
    let code = fields.next().filter(|c| !c.is_empty())?;
    let lat = fields.next()?.parse().ok()?;
    let lon = fields.next()?.parse().ok()?;
    match fields.next() {
        None => Some((code, Coordinates { lat, lon })),
        Some(_) => None,
    }
}

/// The German gazetteer, parsed on first use and shared afterwards.
pub fn builtin_germany() -> &'static Gazetteer {
    static GERMANY: OnceLock<Gazetteer> = OnceLock::new();
    GERMANY.get_or_init(germany)
}

/// The gazetteer for the configured `country`: the built-in data for `"DE"`
/// (empty for any other country) plus `extra` entries, e.g. GeoNames rows
/// imported into the database. Extra entries override built-in ones, so a
/// deployment can correct or add postcodes without a new release.
pub fn for_country(
    country: &str,
    extra: impl IntoIterator<Item = (String, Coordinates)>,
) -> Gazetteer {
    let mut gazetteer = if country.trim().eq_ignore_ascii_case("DE") {
        builtin_germany().clone()
    } else {
        Gazetteer::new(country)
    };
    for (code, c) in extra {
        gazetteer.insert(code, c);
    }
    gazetteer
}

/// One postcode from a GeoNames postal-code dump.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoNamesEntry {
    /// ISO country code, uppercased.
    pub country: String,
    /// Normalised postcode (see [`normalise`]).
    pub postcode: String,
    /// Place name of the first row seen for this postcode.
    pub place: String,
    /// Mean of the coordinates of all rows for this postcode.
    pub coordinates: Coordinates,
}

/// Why a GeoNames file was rejected; the whole import fails on the first bad row
/// so that a truncated or wrong file is noticed instead of half-loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GeoNamesError {
    /// `line` is 1-based, as shown by editors.
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
}

/// Parses a GeoNames postal-code file (e.g. `AT.txt` from
/// <https://download.geonames.org/export/zip/>).
///
/// Tab-separated columns: country code, postal code, place name, admin name1,
/// admin code1, admin name2, admin code2, admin name3, admin code3, latitude,
/// longitude, accuracy. Only country, postal code, place, latitude and
/// longitude are used. GeoNames lists one row per place, so a postcode can
/// appear several times; those rows are merged into one entry at the mean of
/// their coordinates (fine for the small areas a postcode covers). Entries
/// come out in the order their postcode first appears.
pub fn parse_geonames(text: &str) -> Result<Vec<GeoNamesEntry>, GeoNamesError> {
    // Per entry: index into `entries`, and the row count and coordinate sums for the mean.
    let mut seen: HashMap<(String, String), (usize, f64, f64, f64)> = HashMap::new();
    let mut entries: Vec<GeoNamesEntry> = Vec::new();

    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let row = raw.trim_start_matches('\u{feff}').trim_end_matches('\r');
        if row.trim().is_empty() {
            continue;
        }
        let error = |reason: String| GeoNamesError::Line { line, reason };
        let columns: Vec<&str> = row.split('\t').collect();
        if columns.len() < 11 {
            return Err(error(format!(
                "expected at least 11 tab-separated columns, found {}",
                columns.len()
            )));
        }
        let country = columns[0].trim().to_ascii_uppercase();
        let postcode = normalise(columns[1]);
        if country.is_empty() || postcode.is_empty() {
            return Err(error("empty country code or postal code".into()));
        }
        let lat = parse_degrees(columns[9], 90.0).map_err(|r| error(format!("latitude {r}")))?;
        let lon = parse_degrees(columns[10], 180.0).map_err(|r| error(format!("longitude {r}")))?;

        match seen.get_mut(&(country.clone(), postcode.clone())) {
            Some((at, count, sum_lat, sum_lon)) => {
                *count += 1.0;
                *sum_lat += lat;
                *sum_lon += lon;
                if let Some(entry) = entries.get_mut(*at) {
                    entry.coordinates = Coordinates {
                        lat: *sum_lat / *count,
                        lon: *sum_lon / *count,
                    };
                }
            }
            None => {
                seen.insert(
                    (country.clone(), postcode.clone()),
                    (entries.len(), 1.0, lat, lon),
                );
                entries.push(GeoNamesEntry {
                    country,
                    postcode,
                    place: columns[2].trim().to_owned(),
                    coordinates: Coordinates { lat, lon },
                });
            }
        }
    }
    Ok(entries)
}

/// A finite decimal-degree value within ±`limit`; the error is the reason.
fn parse_degrees(field: &str, limit: f64) -> Result<f64, String> {
    match field.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value.abs() <= limit => Ok(value),
        Ok(_) => Err(format!("{:?} out of range", field.trim())),
        Err(_) => Err(format!("{:?} is not a number", field.trim())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn berlin_is_about_255_km_from_hamburg() {
        let de = builtin_germany();
        let berlin = de.lookup("10115").unwrap();
        let hamburg = de.lookup("20095").unwrap();
        let km = haversine_km(berlin, hamburg);
        assert!((km - 255.0).abs() < 5.0, "got {km} km");
    }

    #[test]
    fn embedded_file_is_complete() {
        let de = germany();
        let data_lines = DE_POSTCODES
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .count();
        assert!(de.len() > 8000, "only {} entries", de.len());
        // No line was silently skipped as malformed.
        assert_eq!(de.len(), data_lines);
        assert_eq!(de.country(), "DE");
        assert!(de.iter().all(|(code, c)| code.len() == 5
            && (47.0..56.0).contains(&c.lat)
            && (5.0..16.0).contains(&c.lon)));
    }

    #[test]
    fn for_country_merges_and_overrides() {
        let here = Coordinates { lat: 1.0, lon: 2.0 };
        let de = for_country(
            "de",
            [("10115".to_owned(), here), ("99999".to_owned(), here)],
        );
        assert_eq!(de.lookup("10115"), Some(here));
        assert_eq!(de.lookup("99999"), Some(here));
        assert!(de.lookup("20095").is_some());

        let at = for_country("AT", [("1010".to_owned(), here)]);
        assert_eq!(at.country(), "AT");
        assert_eq!(at.len(), 1);
        assert_eq!(at.lookup(" 1010 "), Some(here));
    }

    #[test]
    fn parses_geonames_and_averages_duplicates() {
        let sample = "AT\t1010\tWien, Innere Stadt\tWien\t09\tWien, Stadt\t900\t\t\t48.2077\t16.3705\t4\n\
                      AT\t1010\tWien\tWien\t09\tWien, Stadt\t900\t\t\t48.2177\t16.3805\t4\r\n\
                      \n\
                      at\t 8010 \tGraz\tSteiermark\t06\tGraz\t601\t\t\t47.0667\t15.45\t4\n";
        let entries = parse_geonames(sample).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].postcode, "1010");
        assert_eq!(entries[0].place, "Wien, Innere Stadt");
        assert!((entries[0].coordinates.lat - 48.2127).abs() < 1e-9);
        assert!((entries[0].coordinates.lon - 16.3755).abs() < 1e-9);
        assert_eq!(entries[1].country, "AT");
        assert_eq!(entries[1].postcode, "8010");
        assert_eq!(
            entries[1].coordinates,
            Coordinates {
                lat: 47.0667,
                lon: 15.45
            }
        );
    }

    #[test]
    fn reports_bad_geonames_lines_by_number() {
        let short = "AT\t1010\tWien\t48.2\t16.37\n";
        assert!(matches!(
            parse_geonames(short),
            Err(GeoNamesError::Line { line: 1, .. })
        ));

        let bad_lat = "AT\t1010\tWien\tWien\t09\t\t\t\t\t48.2\t16.37\t4\n\n\
                       AT\t8010\tGraz\tSteiermark\t06\t\t\t\t\tnorth\t15.45\t4\n";
        let err = parse_geonames(bad_lat).unwrap_err();
        assert_eq!(
            err,
            GeoNamesError::Line {
                line: 3,
                reason: "latitude \"north\" is not a number".into()
            }
        );
        assert!(err.to_string().starts_with("line 3: "));

        let out_of_range = "AT\t8010\tGraz\t\t\t\t\t\t\t47.0\t200.0\t4\n";
        assert!(matches!(
            parse_geonames(out_of_range),
            Err(GeoNamesError::Line { line: 1, .. })
        ));
    }

    proptest! {
        #[test]
        fn haversine_is_symmetric_and_zero_on_diagonal(
            lat_a in -90.0f64..=90.0, lon_a in -180.0f64..=180.0,
            lat_b in -90.0f64..=90.0, lon_b in -180.0f64..=180.0,
        ) {
            let a = Coordinates { lat: lat_a, lon: lon_a };
            let b = Coordinates { lat: lat_b, lon: lon_b };
            prop_assert!((haversine_km(a, b) - haversine_km(b, a)).abs() < 1e-9);
            prop_assert_eq!(haversine_km(a, a), 0.0);
            prop_assert!(haversine_km(a, b) >= 0.0);
            prop_assert!(haversine_km(a, b) <= std::f64::consts::PI * EARTH_RADIUS_KM + 1e-6);
        }
    }
}
