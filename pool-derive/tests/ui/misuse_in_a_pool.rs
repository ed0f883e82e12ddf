// One misuse is one error: the derive still implements `Poolable`, so pooling the type
// adds no "`Poolable` is not implemented" errors of its own.
use riptide_pool::{Pool, Poolable};

#[derive(Poolable)]
#[poolable(max_uses = 0)]
struct Conn {
    #[poolable(reset = clear)]
    buf: Vec<u8>,
}

fn pool() -> Pool<Conn> {
    Pool::builder(|| async { Ok::<_, std::io::Error>(Conn { buf: Vec::new() }) })
        .max_size(4)
        .build()
        .unwrap()
}

fn main() {
    let pool = pool();
    let _ = pool.try_get();
}
