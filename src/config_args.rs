//! `--preset NAME | --dim D --scratch-rows S --acc-rows A --lanes L`: the one way every
//! subcommand picks a [`Config`]. Start from the preset (`default` unless given) and override
//! any field.

use clap::Args;
use spec::Config;

use crate::error::CliError;

/// Configuration flags shared by the subcommands.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Named configuration: default, ice40-up5k, ecp5-25k, ecp5-85k, tpu-v1.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub preset: String,
    /// Array size (DIM x DIM PEs), 1..=256; overrides the preset.
    #[arg(long, value_name = "D")]
    pub dim: Option<usize>,
    /// Scratchpad rows (power of two, <= 65536); overrides the preset.
    #[arg(long, value_name = "S")]
    pub scratch_rows: Option<usize>,
    /// Accumulator rows (power of two, <= 65536); overrides the preset.
    #[arg(long, value_name = "A")]
    pub acc_rows: Option<usize>,
    /// 32-bit words per beat of the link (a power of two, 1..=64; docs/design.md "A wider
    /// link: LANES"): a row of DIM int8 moves in one beat once LANES >= DIM/4; overrides the
    /// preset.
    #[arg(long, value_name = "L")]
    pub lanes: Option<usize>,
}

impl ConfigArgs {
    /// The validated configuration, or a one-line error naming the flag.
    pub fn config(&self) -> Result<Config, CliError> {
        let base = Config::preset(&self.preset).map_err(|e| CliError::input("--preset", e.to_string()))?;
        let dim = self.dim.unwrap_or(base.dim());
        let scratch = self.scratch_rows.unwrap_or(base.scratch_rows());
        let acc = self.acc_rows.unwrap_or(base.acc_rows());
        let lanes = match self.lanes {
            Some(l) => spec::lanes::Lanes::new(l).map_err(|e| CliError::input("--lanes", e.to_string()))?,
            None => base.lanes(),
        };
        Config::new(dim, scratch, acc).map(|c| c.with_lanes(lanes)).map_err(|e| {
            let flag = match e {
                spec::ConfigError::Dim(_) => "--dim",
                spec::ConfigError::Rows { what: "SCRATCH_ROWS", .. } => "--scratch-rows",
                spec::ConfigError::Rows { .. } => "--acc-rows",
                spec::ConfigError::UnknownPreset(_) => "--preset",
                spec::ConfigError::Lanes(_) => "--lanes",
            };
            CliError::input(flag, e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(preset: &str, dim: Option<usize>, s: Option<usize>, a: Option<usize>) -> ConfigArgs {
        ConfigArgs { preset: preset.into(), dim, scratch_rows: s, acc_rows: a, lanes: None }
    }

    #[test]
    fn presets_and_overrides() {
        assert_eq!(args("default", None, None, None).config().unwrap(), Config::default());
        assert_eq!(
            args("ecp5-25k", None, None, Some(64)).config().unwrap(),
            Config::new(4, 2048, 64).unwrap()
        );
        assert_eq!(
            args("default", Some(16), None, None).config().unwrap(),
            Config::new(16, 1024, 512).unwrap()
        );
    }

    #[test]
    fn errors_name_the_flag() {
        let e = args("zynq", None, None, None).config().unwrap_err();
        assert_eq!(e.subject, "--preset");
        assert_eq!(args("default", Some(0), None, None).config().unwrap_err().subject, "--dim");
        assert_eq!(args("default", None, Some(3), None).config().unwrap_err().subject, "--scratch-rows");
        let e = ConfigArgs { lanes: Some(3), ..args("default", None, None, None) }.config().unwrap_err();
        assert_eq!(e.to_string(), "--lanes: LANES must be a power of two in 1..=64, got 3");
        let wide = ConfigArgs { lanes: Some(4), ..args("default", Some(16), None, None) }.config().unwrap();
        assert_eq!(wide, Config::new(16, 1024, 512).unwrap().with_lanes(spec::lanes::Lanes::new(4).unwrap()));
        let e = args("default", None, None, Some(100)).config().unwrap_err();
        assert_eq!(e.to_string(), "--acc-rows: ACC_ROWS must be a power of two in 1..=65536, got 100");
    }
}
