//! A well-formed component that is not a healthprobe probe: it exports `greet` instead of
//! `describe` and `check`.

wit_bindgen::generate!({
    inline: "
        package test:other@0.1.0;
        world other {
            export greet: func(name: string) -> string;
        }
    ",
});

struct Other;

impl Guest for Other {
    fn greet(name: String) -> String {
        format!("hello {name}")
    }
}

export!(Other);
