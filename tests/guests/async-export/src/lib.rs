//! Exports `check` as an async function of the component model's async ABI (what
//! componentize-qjs builds by default): healthprobe must refuse it, saying how to build
//! it without.

wit_bindgen::generate!({
    inline: "
        package test:cm-async@0.1.0;
        world probe-async {
            export describe: func() -> string;
            export check: async func() -> string;
        }
    ",
});

struct AsyncExport;

impl Guest for AsyncExport {
    fn describe() -> String {
        "async-export".into()
    }

    async fn check() -> String {
        "never run".into()
    }
}

export!(AsyncExport);
