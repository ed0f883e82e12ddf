// The fallback impl carries the type's generics and where-clause: pooling a generic type
// whose derive is misused shows the misuse and nothing else.
use riptide_pool::{Pool, Poolable};
use std::collections::HashMap;
use std::hash::Hash;

#[derive(Poolable)]
#[poolable(max_lifetime_secs = 300, max_lifetime_secs = 600)]
struct Cache<K, V>
where
    K: Hash + Eq,
{
    #[poolable(reset = clear)]
    map: HashMap<K, V>,
}

fn pool<K: Hash + Eq + Send + 'static, V: Send + 'static>() -> Pool<Cache<K, V>> {
    Pool::builder(|| async {
        Ok::<_, std::io::Error>(Cache {
            map: HashMap::new(),
        })
    })
    .build()
    .unwrap()
}

fn main() {
    let _ = pool::<String, u32>();
}
