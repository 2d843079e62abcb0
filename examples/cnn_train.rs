//! Train the digits CNN once and print its float test accuracy and the training time.
//!
//! ```text
//! cargo run --release --example cnn_train                      # CnnTrainConfig::default()
//! cargo run --release --example cnn_train -- '{"channels": [8, 16], "epochs": 50, "batch_size": 32,
//!                                              "learning_rate": 0.02, "seed": 1}'
//! ```

use std::time::Instant;

use protobrain::nn::{digits, train_cnn, CnnTrainConfig};

fn main() {
    let cfg: CnnTrainConfig = match std::env::args().nth(1) {
        Some(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
            eprintln!("error: bad configuration: {e}");
            std::process::exit(2)
        }),
        None => CnnTrainConfig::default(),
    };
    let split = digits::standard_split(&digits::bundled()).expect("the bundled data set splits");
    let start = Instant::now();
    let mut last = None;
    let model = train_cnn(&split.train, &cfg, |s| last = Some(*s)).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    let time = start.elapsed();
    let last = last.expect("at least one epoch");
    println!("config: {}", serde_json::to_string(&cfg).expect("a config serialises"));
    println!(
        "{} parameters, last epoch: loss {:.4}, train {:.2}%; test accuracy {:.2}% ({} images); \
         training {:.2} s",
        model.parameters(),
        last.loss,
        100.0 * last.train_accuracy,
        100.0 * model.accuracy(&split.test),
        split.test.len(),
        time.as_secs_f64()
    );
}
