//! Exports `describe` and `check` like a probe, but also imports `test:missing/api`,
//! which no healthprobe host provides: linking must fail with a clear message.

wit_bindgen::generate!({
    inline: "
        package test:missing@0.1.0;
        interface api {
            ping: func() -> string;
        }
        world probe-plus {
            import api;
            export describe: func() -> string;
            export check: func() -> string;
        }
    ",
});

struct BadImport;

impl Guest for BadImport {
    fn describe() -> String {
        "bad-import".into()
    }

    fn check() -> String {
        // Used, so the import stays in the component.
        test::missing::api::ping()
    }
}

export!(BadImport);
