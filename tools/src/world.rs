//! The processes one command runs on: one, or the ranks of an `mpirun` job (cargo feature
//! `mpi`). Commands ask how many ranks there are and which one they are; the few collectives
//! they need are here, over bytes and numbers, so no other module touches MPI.
//!
//! MPI starts only when a launcher set the job up (`OMPI_COMM_WORLD_SIZE`, `PMI_SIZE`,
//! `PMIX_RANK`): a plain `roibin compress` never initialises MPI, with or without the feature.

/// This process's place in the job.
pub struct World {
    rank: usize,
    size: usize,
    #[cfg(feature = "mpi")]
    comm: Option<(
        mpi::environment::Universe,
        mpi::topology::SimpleCommunicator,
    )>,
}

/// Whether a launcher started this process as part of a job.
fn launched() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

impl World {
    /// One process, or this rank of the `mpirun` job that started it.
    pub fn init() -> World {
        #[cfg(feature = "mpi")]
        if launched() {
            use mpi::topology::Communicator;
            // Worker threads (rayon) never call MPI: the main thread does, so Funneled.
            if let Some((universe, _)) = mpi::initialize_with_threading(mpi::Threading::Funneled) {
                let comm = universe.world();
                return World {
                    rank: comm.rank() as usize,
                    size: comm.size() as usize,
                    comm: Some((universe, comm)),
                };
            }
        }
        #[cfg(not(feature = "mpi"))]
        if launched() {
            eprintln!(
                "warning: started by an MPI launcher, but this roibin was built without the `mpi` \
                 feature: every rank does the whole job (build with `--features mpi`)"
            );
        }
        World::init_single()
    }

    /// This process alone (for library callers that are not part of a job).
    pub fn init_single() -> World {
        World {
            rank: 0,
            size: 1,
            #[cfg(feature = "mpi")]
            comm: None,
        }
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Rank 0: the one that writes files and prints results.
    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// Run a command on this process's world: an error on one rank of several ends the whole
    /// job (the others may be waiting on it); alone, the error is returned as usual.
    pub fn run<T>(f: impl FnOnce(&World) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let world = World::init();
        match f(&world) {
            Err(e) if world.size() > 1 => world.fail(&e),
            r => r,
        }
    }

    /// End the whole job after an error on this rank (others may be waiting on it).
    pub fn fail(&self, e: &anyhow::Error) -> ! {
        eprintln!("error (rank {} of {}): {e:#}", self.rank, self.size);
        #[cfg(feature = "mpi")]
        if let Some((_, comm)) = &self.comm {
            use mpi::topology::Communicator;
            comm.abort(1);
        }
        std::process::exit(1)
    }

    /// Send `bytes` to rank `to` (blocking).
    pub fn send(&self, to: usize, bytes: &[u8]) {
        #[cfg(feature = "mpi")]
        if let Some((_, comm)) = &self.comm {
            use mpi::point_to_point::Destination;
            use mpi::topology::Communicator;
            comm.process_at_rank(to as i32).send(bytes);
            return;
        }
        unreachable!(
            "send to rank {to} of a single-process world ({} bytes)",
            bytes.len()
        )
    }

    /// Receive the next message from rank `from`.
    pub fn receive(&self, from: usize) -> Vec<u8> {
        #[cfg(feature = "mpi")]
        if let Some((_, comm)) = &self.comm {
            use mpi::point_to_point::Source;
            use mpi::topology::Communicator;
            return comm.process_at_rank(from as i32).receive_vec::<u8>().0;
        }
        unreachable!("receive from rank {from} of a single-process world")
    }

    /// Rank 0's `values` on every rank (others pass anything; their vector is replaced).
    pub fn broadcast(&self, values: &mut Vec<f64>) {
        let _ = &values; // one process: already everywhere
        #[cfg(feature = "mpi")]
        if let Some((_, comm)) = &self.comm {
            use mpi::collective::Root;
            use mpi::topology::Communicator;
            let root = comm.process_at_rank(0);
            let mut n = values.len() as u64;
            root.broadcast_into(&mut n);
            values.resize(n as usize, 0.0);
            root.broadcast_into(&mut values[..]);
        }
    }

    /// Every rank's `mine` (same length on all), concatenated in rank order, on every rank.
    pub fn all_gather(&self, mine: &[f64]) -> Vec<f64> {
        #[cfg(feature = "mpi")]
        if let Some((_, comm)) = &self.comm {
            use mpi::collective::CommunicatorCollectives;
            let mut all = vec![0.0; mine.len() * self.size];
            comm.all_gather_into(mine, &mut all[..]);
            return all;
        }
        mine.to_vec()
    }
}

/// Frame several byte strings into one message: count, lengths, bytes.
pub fn pack(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(8 + 8 * parts.len() + parts.iter().map(Vec::len).sum::<usize>());
    out.extend_from_slice(&(parts.len() as u64).to_le_bytes());
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
    }
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The byte strings [`pack`] framed.
///
/// ```
/// use roibin_tools::world::{pack, unpack};
/// let parts = vec![b"ab".to_vec(), vec![], b"xyz".to_vec()];
/// assert_eq!(unpack(&pack(&parts)).unwrap(), parts);
/// assert!(unpack(&[1, 0, 0]).is_err());
/// ```
pub fn unpack(msg: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let word = |i: usize| -> anyhow::Result<usize> {
        let b = msg
            .get(i * 8..i * 8 + 8)
            .ok_or_else(|| anyhow::anyhow!("truncated message from another rank"))?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
    };
    let n = word(0)?;
    let mut at = 8 * (1 + n);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let len = word(1 + i)?;
        let part = msg
            .get(at..at + len)
            .ok_or_else(|| anyhow::anyhow!("truncated message from another rank"))?;
        out.push(part.to_vec());
        at += len;
    }
    Ok(out)
}
