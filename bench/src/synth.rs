//! Seeded synthetic bets with a known number of winners per agency.
//!
//! A [`Synth`] is a recipe: a seed, how many bets each agency places, how many
//! of them win and the winning number. [`Synth::bets_of`] replays one agency's
//! stream; the same recipe always yields the same bytes, and agencies are
//! independent of each other, so an agency can be generated alone (or on
//! another thread) without generating the ones before it.
//!
//! The winners are chosen here, not left to chance: exactly
//! [`Synth::winners_of`] bets of an agency carry the winning number and no
//! other bet does, so a central's WINNERS answer can be checked exactly.
//!
//! The bets look like the course's: Argentine and Spanish names, some of them
//! needing CSV quoting (`Pérez, hijo`, `José "Pepe"`) or carrying accents and
//! apostrophes (`Núñez`, `D'Alessandro`); documents of 7 or 8 digits, a few
//! with leading zeros; birthdates from 1930 to 2005. Nothing allocates per
//! bet: names borrow from tables, the document lives in the bet itself.

use lottery_proto::bets::bet::{Bet, civil_from_days};
use lottery_proto::wire::{BetRef, Date};

/// The draw's number unless the central is configured otherwise.
pub const DEFAULT_WINNING_NUMBER: u16 = 7574;

/// How many winners each agency gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WinnerPlan {
    /// The same count for every agency (capped at its number of bets).
    Fixed(u32),
    /// 0 to 3 per agency, decided by the seed: like the course's 2, 3, 3, 2, 0,
    /// and some agencies get none, which is a case of its own on the wire.
    Varied,
}

/// The recipe for a set of synthetic agencies.
#[derive(Clone, Debug)]
pub struct Synth {
    seed: u64,
    bets_per_agency: u32,
    winners: WinnerPlan,
    winning_number: u16,
    /// One or two given names, built once so that bets can borrow them.
    first_names: Vec<String>,
}

impl Synth {
    pub fn new(seed: u64, bets_per_agency: u32, winners: WinnerPlan) -> Synth {
        let mut first_names = Vec::with_capacity(GIVEN_NAMES.len() * (SECOND_NAMES.len() + 1));
        for given in GIVEN_NAMES {
            first_names.push((*given).to_owned());
            // A nickname or a comma already makes the name unusual enough.
            if given.contains([',', '"']) {
                continue;
            }
            for second in SECOND_NAMES {
                first_names.push(format!("{given} {second}"));
            }
        }
        Synth {
            seed,
            bets_per_agency,
            winners,
            winning_number: DEFAULT_WINNING_NUMBER,
            first_names,
        }
    }

    /// Uses another winning number (the central's `WINNING_NUMBER`).
    pub fn with_winning_number(mut self, number: u16) -> Synth {
        assert!(
            number <= lottery_proto::bets::bet::MAX_NUMBER,
            "winning number above 9999"
        );
        self.winning_number = number;
        self
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn bets_per_agency(&self) -> u32 {
        self.bets_per_agency
    }

    pub fn winning_number(&self) -> u16 {
        self.winning_number
    }

    /// How many of `agency`'s bets carry the winning number.
    pub fn winners_of(&self, agency: u32) -> u32 {
        let planned = match self.winners {
            WinnerPlan::Fixed(n) => n,
            WinnerPlan::Varied => {
                (mix(self.seed ^ 0x5eed_0fa9_e1c1_e5a1 ^ u64::from(agency)) % 4) as u32
            }
        };
        planned.min(self.bets_per_agency)
    }

    /// The stream of bets of `agency` (agencies are numbered from 1).
    pub fn bets_of(&self, agency: u32) -> AgencyBets<'_> {
        AgencyBets {
            synth: self,
            rng: Rng::new(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(agency)),
            position: 0,
            winners_left: self.winners_of(agency),
        }
    }
}

/// One agency's bets, in the order it sends them.
pub struct AgencyBets<'s> {
    synth: &'s Synth,
    rng: Rng,
    position: u32,
    winners_left: u32,
}

impl<'s> Iterator for AgencyBets<'s> {
    type Item = SynthBet<'s>;

    fn next(&mut self) -> Option<SynthBet<'s>> {
        let synth = self.synth;
        if self.position == synth.bets_per_agency {
            return None;
        }
        // Selection sampling (Knuth's algorithm S): each remaining bet wins
        // with probability winners_left / bets_left, which picks exactly
        // `winners_of` positions, spread uniformly, in one pass.
        let bets_left = u64::from(synth.bets_per_agency - self.position);
        let wins = self.rng.below(bets_left) < u64::from(self.winners_left);
        self.position += 1;
        let number = if wins {
            self.winners_left -= 1;
            synth.winning_number
        } else {
            // Any of the other 9,999 numbers, so no bet wins by accident.
            let n = self.rng.below(9_999) as u16;
            if n >= synth.winning_number { n + 1 } else { n }
        };
        let first_name =
            &synth.first_names[self.rng.below(synth.first_names.len() as u64) as usize];
        let last_name = LAST_NAMES[self.rng.below(LAST_NAMES.len() as u64) as usize];
        let document = Document::random(&mut self.rng);
        let day = FIRST_BIRTH_DAY
            + self
                .rng
                .below((LAST_BIRTH_DAY - FIRST_BIRTH_DAY + 1) as u64) as i64;
        Some(SynthBet {
            first_name,
            last_name,
            document,
            birthdate: civil_from_days(day),
            number,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.synth.bets_per_agency - self.position) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for AgencyBets<'_> {}

/// One generated bet, borrowing its names from the [`Synth`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynthBet<'s> {
    pub first_name: &'s str,
    pub last_name: &'static str,
    document: Document,
    pub birthdate: Date,
    pub number: u16,
}

impl SynthBet<'_> {
    pub fn document(&self) -> &str {
        self.document.as_str()
    }

    /// The bet as the wire encoder takes it.
    pub fn as_ref(&self) -> BetRef<'_> {
        BetRef {
            first_name: self.first_name,
            last_name: self.last_name,
            document: self.document(),
            birthdate: self.birthdate,
            number: self.number,
        }
    }

    pub fn to_bet(&self) -> Bet {
        Bet {
            first_name: self.first_name.to_owned(),
            last_name: self.last_name.to_owned(),
            document: self.document().to_owned(),
            birthdate: self.birthdate,
            number: self.number,
        }
    }
}

/// A document number kept as the digits it is written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Document {
    digits: [u8; 8],
    len: u8,
}

impl Document {
    fn random(rng: &mut Rng) -> Document {
        // Mostly 8-digit DNIs of living adults, some older 7-digit ones, and a
        // few written with a leading zero, which must survive as text.
        let (value, len) = match rng.below(100) {
            0..=84 => (10_000_000 + rng.below(38_000_000), 8),
            85..=96 => (1_000_000 + rng.below(9_000_000), 7),
            _ => (rng.below(10_000_000), 8),
        };
        let mut digits = [b'0'; 8];
        let mut v = value;
        for slot in digits[..len].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        Document {
            digits,
            len: len as u8,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.digits[..self.len as usize]).expect("documents are ASCII digits")
    }
}

/// 1930-01-01 and 2005-12-31, as days since 1970-01-01.
const FIRST_BIRTH_DAY: i64 = -14_610;
const LAST_BIRTH_DAY: i64 = 13_148;

/// SplitMix64: tiny, fast and good enough for test data, and ours, so the
/// data for a seed never changes with a dependency's version.
#[derive(Clone, Debug)]
struct Rng {
    state: u64,
}

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng { state: mix(seed) }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-40
    /// for the small `n` used here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[rustfmt::skip]
const GIVEN_NAMES: &[&str] = &[
    "Santiago", "Mateo", "Benjamín", "Valentino", "Thiago", "Joaquín", "Lautaro", "Tomás",
    "Bautista", "Juan", "Martín", "Nicolás", "Agustín", "Facundo", "Franco", "Lucas", "Ignacio",
    "Gonzalo", "Matías", "Emiliano", "Ramón", "Héctor", "Raúl", "Óscar", "Ángel", "Iñaki",
    "Sofía", "Valentina", "Martina", "Catalina", "Camila", "Lucía", "Julieta", "Florencia",
    "Agustina", "Milagros", "Micaela", "Rocío", "Paula", "Carolina", "María José", "Ana", "Belén",
    "Guadalupe", "Josefina", "Delfina", "Mía", "Inés", "Mónica", "Noemí", "Begoña",
    "María de los Ángeles", "José \"Pepe\"", "Francisco \"Pancho\"", "Ana, María",
];

#[rustfmt::skip]
const SECOND_NAMES: &[&str] = &[
    "Lionel", "Emanuel", "Nicolás", "Andrés", "Ezequiel", "Sebastián", "Alejandro", "Rocío",
    "Soledad", "Victoria", "Luján", "Belén",
];

#[rustfmt::skip]
const LAST_NAMES: &[&str] = &[
    "González", "Rodríguez", "Gómez", "Fernández", "López", "Díaz", "Martínez", "Pérez", "García",
    "Sánchez", "Romero", "Sosa", "Álvarez", "Torres", "Ruiz", "Ramírez", "Flores", "Benítez",
    "Acosta", "Medina", "Herrera", "Suárez", "Aguirre", "Giménez", "Gutiérrez", "Pereyra",
    "Rojas", "Molina", "Castro", "Ortiz", "Silva", "Núñez", "Luna", "Juárez", "Cabrera", "Ríos",
    "Morales", "Godoy", "Moreno", "Ferreyra", "Domínguez", "Carrizo", "Peralta", "Castillo",
    "Ledesma", "Quiroga", "Vega", "Vera", "Muñoz", "Ojeda", "Ponce", "Villalba", "Cardozo",
    "Navarro", "Coronel", "Vázquez", "Ramos", "Vargas", "Cáceres", "Arias", "Figueroa", "Córdoba",
    "Correa", "Maldonado", "Paz", "Rivero", "Miranda", "Mansilla", "Farías", "Roldán", "Méndez",
    "Guzmán", "Agüero", "Hernández", "Lucero", "Cruz", "Páez", "Escobar", "Mendoza", "Barrios",
    "Bustos", "Ávila", "Ibáñez", "Peña", "Argüello", "Güemes", "Lorca", "Zambrano", "Rivera",
    "Rossi", "Romano", "Bianchi", "Ferrari", "Russo", "Costa", "Di Stéfano", "De Luca",
    "de la Torre", "D'Alessandro", "O'Brien", "Pérez, hijo", "García, Jr.", "Iñíguez \"Chino\"",
    "Fernández-Núñez",
];

#[cfg(test)]
mod tests {
    use super::*;
    use lottery_proto::bets::bet::{is_calendar_date, parse_row, today};

    fn all_bets(synth: &Synth, agency: u32) -> Vec<Bet> {
        synth.bets_of(agency).map(|b| b.to_bet()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_bets_and_another_seed_does_not() {
        let a = Synth::new(42, 500, WinnerPlan::Varied);
        let b = Synth::new(42, 500, WinnerPlan::Varied);
        let c = Synth::new(43, 500, WinnerPlan::Varied);
        assert_eq!(all_bets(&a, 3), all_bets(&b, 3));
        assert_ne!(all_bets(&a, 3), all_bets(&c, 3));
    }

    #[test]
    fn agencies_get_different_streams() {
        let s = Synth::new(7, 200, WinnerPlan::Fixed(1));
        assert_ne!(all_bets(&s, 1), all_bets(&s, 2));
    }

    #[test]
    fn exactly_the_planned_bets_carry_the_winning_number() {
        for plan in [
            WinnerPlan::Fixed(0),
            WinnerPlan::Fixed(1),
            WinnerPlan::Fixed(37),
            WinnerPlan::Varied,
        ] {
            let s = Synth::new(9, 1_000, plan);
            for agency in 1..=20 {
                let winners = s
                    .bets_of(agency)
                    .filter(|b| b.number == DEFAULT_WINNING_NUMBER)
                    .count();
                assert_eq!(
                    winners as u32,
                    s.winners_of(agency),
                    "{plan:?} agency {agency}"
                );
            }
        }
    }

    #[test]
    fn varied_winners_range_over_zero_to_three() {
        let s = Synth::new(1, 10_000, WinnerPlan::Varied);
        let counts: Vec<u32> = (1..=100).map(|a| s.winners_of(a)).collect();
        for n in 0..=3 {
            assert!(
                counts.contains(&n),
                "no agency with {n} winners: {counts:?}"
            );
        }
        assert!(counts.iter().all(|&n| n <= 3));
    }

    #[test]
    fn winners_are_capped_by_the_number_of_bets() {
        let s = Synth::new(1, 5, WinnerPlan::Fixed(9));
        assert_eq!(s.winners_of(1), 5);
        assert!(s.bets_of(1).all(|b| b.number == DEFAULT_WINNING_NUMBER));
    }

    #[test]
    fn another_winning_number_is_honoured() {
        let s = Synth::new(5, 2_000, WinnerPlan::Fixed(4)).with_winning_number(0);
        assert_eq!(s.bets_of(1).filter(|b| b.number == 0).count(), 4);
    }

    #[test]
    fn every_bet_is_valid_by_the_centrals_rules() {
        let s = Synth::new(11, 20_000, WinnerPlan::Varied);
        let today = today();
        for bet in s.bets_of(1) {
            let number = bet.number.to_string();
            let date = lottery_proto::bets::bet::format_date(bet.birthdate);
            let row = [
                bet.first_name,
                bet.last_name,
                bet.document(),
                std::str::from_utf8(&date).unwrap(),
                &number,
            ];
            parse_row(&row, today).unwrap_or_else(|e| panic!("{row:?}: {e}"));
        }
    }

    #[test]
    fn documents_have_seven_or_eight_digits_and_some_start_with_zero() {
        let s = Synth::new(3, 5_000, WinnerPlan::Varied);
        let docs: Vec<String> = s.bets_of(1).map(|b| b.document().to_owned()).collect();
        assert!(
            docs.iter()
                .all(|d| (7..=8).contains(&d.len()) && d.bytes().all(|c| c.is_ascii_digit()))
        );
        assert!(docs.iter().any(|d| d.starts_with('0')));
        assert!(docs.iter().any(|d| d.len() == 7));
    }

    #[test]
    fn birthdates_are_real_days_from_1930_to_2005() {
        assert_eq!(
            civil_from_days(FIRST_BIRTH_DAY),
            Date {
                year: 1930,
                month: 1,
                day: 1
            }
        );
        assert_eq!(
            civil_from_days(LAST_BIRTH_DAY),
            Date {
                year: 2005,
                month: 12,
                day: 31
            }
        );
        let s = Synth::new(4, 5_000, WinnerPlan::Varied);
        for bet in s.bets_of(2) {
            assert!(is_calendar_date(bet.birthdate));
            assert!((1930..=2005).contains(&bet.birthdate.year));
        }
    }

    #[test]
    fn some_names_need_csv_quoting() {
        let s = Synth::new(8, 20_000, WinnerPlan::Varied);
        let tricky = s
            .bets_of(1)
            .filter(|b| {
                [b.first_name, b.last_name]
                    .iter()
                    .any(|n| n.contains(',') || n.contains('"'))
            })
            .count();
        assert!(tricky > 100, "only {tricky} of 20,000 names need quoting");
    }
}
