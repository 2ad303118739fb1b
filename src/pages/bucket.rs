//! Splitting the files to upload into request-sized buckets, wrangler's way: sizes descending,
//! three starting buckets tried round-robin, each at most 40 MiB raw and 2,000 files; a file that
//! fits nowhere opens a new bucket. Pure.

use super::{MAX_BUCKET_BYTES, MAX_BUCKET_FILES};

/// One upload request: indexes into the caller's file list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub files: Vec<usize>,
    pub bytes: u64,
}

/// Buckets for files of the given sizes (one entry per distinct hash to upload).
pub fn buckets(sizes: &[u64]) -> Vec<Bucket> {
    buckets_with(sizes, MAX_BUCKET_BYTES, MAX_BUCKET_FILES)
}

pub fn buckets_with(sizes: &[u64], max_bytes: u64, max_files: usize) -> Vec<Bucket> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|a, b| sizes[*b].cmp(&sizes[*a])); // stable: ties keep their order
    let mut out: Vec<Bucket> = vec![Bucket::default(), Bucket::default(), Bucket::default()];
    for (k, &i) in order.iter().enumerate() {
        let size = sizes[i];
        let n = out.len();
        let start = k % n;
        let slot = (0..n)
            .map(|j| (start + j) % n)
            .find(|&b| max_bytes - out[b].bytes >= size && out[b].files.len() < max_files);
        match slot {
            Some(b) => {
                out[b].files.push(i);
                out[b].bytes += size;
            }
            None => out.push(Bucket {
                files: vec![i],
                bytes: size,
            }),
        }
    }
    out.retain(|b| !b.files.is_empty());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_example() {
        // index.html 140, logo.png 75, style.css 47, hello world.txt 17, LICENSE 13
        let b = buckets(&[140, 75, 47, 17, 13]);
        let files: Vec<_> = b.iter().map(|b| b.files.clone()).collect();
        assert_eq!(files, vec![vec![0, 3], vec![1, 4], vec![2]]);
    }

    #[test]
    fn limits_hold() {
        let sizes = vec![1u64; 4500];
        let b = buckets(&sizes);
        assert!(b.iter().all(|b| b.files.len() <= MAX_BUCKET_FILES));
        assert_eq!(b.iter().map(|b| b.files.len()).sum::<usize>(), 4500);

        let mib = 1024 * 1024;
        let sizes = vec![25 * mib, 25 * mib, 25 * mib, 25 * mib, 10 * mib, 5 * mib];
        let b = buckets(&sizes);
        assert!(b.iter().all(|b| b.bytes <= MAX_BUCKET_BYTES));
        assert_eq!(b.iter().map(|b| b.files.len()).sum::<usize>(), 6);
        assert_eq!(b.len(), 4);
    }

    #[test]
    fn empty_input_gives_no_buckets() {
        assert!(buckets(&[]).is_empty());
    }
}
