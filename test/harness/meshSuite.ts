// The setup every mesh integration suite repeats: a real etcd cluster for the describe, and after each
// test finishTest (diagnostics on failure, stop, log tails) on the mesh and load that test started
// through the suite (so a failing test still leaves nothing running).
import { useEtcdCluster, type EtcdFixture } from './etcdFixture.ts';
import { startLoad, type LoadOptions, type LoadRun } from './loadClient.ts';
import { startMesh, type Mesh, type MeshOptions } from './mesh.ts';
import { finishTest } from './scenario.ts';

export interface MeshSuite {
  readonly etcd: EtcdFixture;
  /** startMesh on the suite's etcd cluster; the mesh is stopped after the test. */
  startMesh(opts?: Omit<MeshOptions, 'etcd'>): Promise<Mesh>;
  /** startLoad; the load is closed after the test. */
  startLoad(opts: LoadOptions): Promise<LoadRun>;
}

/** Call inside describe(). */
export function useMeshSuite(): MeshSuite {
  const etcd = useEtcdCluster();
  let mesh: Mesh | undefined;
  let run: LoadRun | undefined;
  afterEach(async function () {
    this.timeout(30_000);
    await finishTest(this.currentTest?.state === 'failed', mesh, run);
    run = undefined;
    mesh = undefined;
  });
  return {
    etcd,
    startMesh: async (opts = {}) => (mesh = await startMesh({ ...opts, etcd: etcd.cluster })),
    startLoad: async (opts) => (run = await startLoad(opts)),
  };
}
