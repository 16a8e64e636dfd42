// Attestation from /proc/<pid>/cgroup contents, for the layouts kubelet
// creates; and the pod lookup behind it.
import t from 'tap';
import { podIdentityByUid, podUidFromCgroup } from '../src/identity/attest.js';
import { Model } from '../src/model/model.js';
import type { ModelObject } from '../src/model/objects.js';

const UID = '0f4e6a2c-93b1-4d7e-8a55-1c2b3d4e5f60';

t.test('cgroupfs and systemd layouts, v1 and v2', async (t) => {
  t.same(podUidFromCgroup(`0::/kubepods/burstable/pod${UID}/0123abcd\n`), { podUid: UID }, 'cgroup v2, cgroupfs driver');
  const sd = `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID.replaceAll('-', '_')}.slice/cri-containerd-0123abcd.scope\n`;
  t.same(podUidFromCgroup(sd), { podUid: UID }, 'systemd driver, underscores back to dashes');
  t.same(podUidFromCgroup(`0::/kubepods.slice/kubepods-pod${UID.replaceAll('-', '_')}.slice/x.scope`), { podUid: UID }, 'guaranteed QoS');
  const v1 = [`12:memory:/kubepods/pod${UID}/abc`, `11:cpu,cpuacct:/kubepods/pod${UID}/abc`, `1:name=systemd:/kubepods/pod${UID}/abc`, '0::/'].join('\n');
  t.same(podUidFromCgroup(v1), { podUid: UID }, 'hybrid hierarchies that agree');
  t.same(podUidFromCgroup(`0::/../../kubepods/besteffort/pod${UID}/abc`), { podUid: UID }, 'seen from another cgroup namespace');
  const staticPod = '6c1fd1d4bd1f7c9b2e4d1a4c0e2f3a4b';
  t.same(podUidFromCgroup(`0::/kubepods/besteffort/pod${staticPod}/abc`), { podUid: staticPod }, "a static pod's hash uid");
});

t.test('not attested', async (t) => {
  t.match(podUidFromCgroup('0::/system.slice/sshd.service\n'), { error: /not in a pod/ });
  t.match(podUidFromCgroup('0::/\n'), { error: /not in a pod/ });
  t.match(podUidFromCgroup(`0::/kubepods/podnot-a-uid/abc`), { error: /not in a pod/ });
  t.match(podUidFromCgroup(`0::/kubepods/xpod${UID}/abc`), { error: /not in a pod/ }, 'the pod prefix must start the component or follow a dash');
  const other = '11111111-2222-3333-4444-555555555555';
  t.match(podUidFromCgroup(`4:memory:/kubepods/pod${UID}/a\n0::/kubepods/pod${other}/b`), { error: /several pods/ }, 'hierarchies that disagree');
});

t.test('pod lookup: on this node only, and by service account', async (t) => {
  const pod = (name: string, uid: string, node: string, sa?: string, phase = 'Running') =>
    ({ object: { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop', uid }, spec: { nodeName: node, serviceAccountName: sa }, status: { phase } } as ModelObject });
  const m = Model.from([pod('a', 'u1', 'n1', 'web'), pod('b', 'u2', 'n2', 'web'), pod('c', 'u3', 'n1'), pod('d', 'u4', 'n1', 'web', 'Succeeded')]);
  t.same(podIdentityByUid(m, 'td', 'n1', 'u1'), { pod: 'shop/a', spiffeId: 'spiffe://td/ns/shop/sa/web' });
  t.equal(podIdentityByUid(m, 'td', 'n1', 'u2'), undefined, "another node's pod");
  t.same(podIdentityByUid(m, 'td', 'n1', 'u3')?.spiffeId, 'spiffe://td/ns/shop/sa/default', 'no service account named: default');
  t.equal(podIdentityByUid(m, 'td', 'n1', 'u4'), undefined, 'a finished pod');
  t.equal(podIdentityByUid(m, 'td', 'n1', 'nope'), undefined);
});
