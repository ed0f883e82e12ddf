use riptide_pool::Poolable;

#[derive(Poolable)]
union U {
    a: u32,
    b: f32,
}

fn main() {}
