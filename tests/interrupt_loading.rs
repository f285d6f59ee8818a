//! Ctrl-C while data loads: the readers of large inputs stop at their next image or block of
//! rows. Its own test binary, since the interrupt flag is process-wide.

use std::sync::atomic::{AtomicBool, Ordering};

use lrfind::data::{self, DataConfig, Source};

static FLAG: AtomicBool = AtomicBool::new(false);

#[test]
fn an_interrupt_stops_an_image_folder_and_a_csv_file_before_they_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for c in ["a", "b"] {
        std::fs::create_dir(d.join(c)).unwrap();
        for i in 0..3u8 {
            image::GrayImage::from_pixel(4, 4, image::Luma([i * 40]))
                .save(d.join(c).join(format!("{i}.png")))
                .unwrap();
        }
    }
    std::fs::write(d.join("t.csv"), "a,y\n1,0\n2,1\n3,0\n4,1\n5,0\n6,1\n").unwrap();
    data::set_interrupt(&FLAG);
    let images = DataConfig::new(Source::ImageFolder(d.to_path_buf()));
    let table = DataConfig::new(Source::Csv(d.join("t.csv")));
    // Not interrupted: both load.
    assert!(data::load(&images).is_ok());
    assert!(data::load(&table).is_ok());
    FLAG.store(true, Ordering::SeqCst);
    for c in [&images, &table] {
        let e = data::load(c).unwrap_err();
        assert!(matches!(e, lrfind::Error::Interrupted(_)), "{e}");
        assert_eq!(e.to_string(), "interrupted while loading the data");
    }
}
