"""The AWS link: Auto Scaling groups in moto become Nodes in the sandbox, as cloud-provider + kubelet would.

Why: decommission and replace playbooks act on AWS (terminate, set desired capacity) and then wait for the
cluster to notice. So, for each scenario group, this reconciler creates a launch template and the group in
moto at start (the scenario loader leaves that to us when AWS is on), then polls moto every ``aws_poll_s``
(0.5 s): each InService instance has a Node named after its private DNS name (``ip-10-0-x-y.ec2.internal``),
providerID ``aws:///<zone>/<instance-id>``, InternalIP/Hostname addresses, zone/instance-type labels and
``kubeops.io/autoscaling-group``. Instances present at the first poll join Ready; later ones appear NotReady
and turn Ready after ``join_delay_s``. A terminated (or terminating) instance's Node is deleted, and the pod
garbage collector removes its pods so controllers replace them. A Node someone deleted is not re-created while
its instance lives (our decommission deletes the Node before terminating the instance).

Nodes the scenario declares in a group keep their names: at setup each gets its own instance (in its zone) and
adopts its id, so ``worker-2`` has providerID ``aws:///us-east-1c/i-...`` and terminating that instance removes
``worker-2``; only the instances above the declared ones become ``ip-...`` Nodes. Setup runs before the sandbox
reports healthy (`prepare`), so a client never sees a declared node without its instance.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

from kubeops.sandbox.kubelet import node_conditions
from kubeops.sandbox.status import ApiError
from kubeops.sandbox.store import rfc3339

if TYPE_CHECKING:
    from kubeops.sandbox.cluster import Cluster

__all__ = ["GROUP_LABEL", "AwsLink", "install"]

log = logging.getLogger("kubeops.sandbox.aws")
GROUP_LABEL = "kubeops.io/autoscaling-group"
DEFAULT_AMI = "ami-12c6146b"  # one of moto's built-in images
_GONE_STATES = ("shutting-down", "terminated", "stopping", "stopped")


class AwsLink:
    """See the module docstring."""

    def __init__(self) -> None:
        self._clients: tuple[Any, Any] | None = None
        self._setup_done = False
        self._first_poll = True
        self._last_poll = float("-inf")
        self._instance_node: dict[str, str] = {}  # instance id -> node name
        self._forgotten: set[str] = set()  # instances whose Node someone else deleted
        self._joining: dict[str, float] = {}  # node -> time it turns Ready
        self._index = 0

    def _aws(self, cluster: Cluster) -> tuple[Any, Any]:
        if self._clients is None:
            import boto3

            kw = {"endpoint_url": cluster.aws_url, "region_name": self._region(cluster),
                  "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
            self._clients = boto3.client("ec2", **kw), boto3.client("autoscaling", **kw)
        return self._clients

    @staticmethod
    def _region(cluster: Cluster) -> str:
        return str(cluster.settings.get("region") or cluster.region)

    @staticmethod
    def _groups(cluster: Cluster) -> list[dict[str, Any]]:
        scenario = cluster.scenario
        return list(scenario.autoscaling_groups) if scenario is not None else []

    def reconcile(self, cluster: Cluster, now: float) -> None:
        if cluster.aws_url is None or not self._groups(cluster):
            return
        self._finish_joins(cluster, now)
        interval = float(cluster.settings.get("aws_poll_s", 0.5))
        if now - self._last_poll < interval:
            return
        self._last_poll = now
        if not self._setup_done:
            self._setup(cluster)
            self._setup_done = True
        self._poll(cluster, now)
        self._first_poll = False

    # -- moto side -------------------------------------------------------------------------------------------
    def _setup(self, cluster: Cluster) -> None:
        """Create each scenario group (and its launch template) in moto unless it exists already.

        The nodes the scenario declares with ``autoscaling_group: <group>`` become the group's first instances:
        one instance is launched per declared node, in that node's zone, and the node adopts it (providerID,
        InternalIP unless the scenario set one, InternalDNS). Only then is the group topped up to ``desired``."""
        ec2, asg = self._aws(cluster)
        region = self._region(cluster)
        existing = {g["AutoScalingGroupName"] for g in asg.describe_auto_scaling_groups(
            AutoScalingGroupNames=[g["name"] for g in self._groups(cluster)])["AutoScalingGroups"]}
        declared_nodes = list(cluster.scenario.nodes) if cluster.scenario is not None else []
        for g in self._groups(cluster):
            if g["name"] in existing:
                continue
            template = f"kubeops-{g['name']}"
            with contextlib.suppress(ec2.exceptions.ClientError):
                ec2.create_launch_template(LaunchTemplateName=template, LaunchTemplateData={
                    "ImageId": DEFAULT_AMI, "InstanceType": g.get("instance_type") or "m5.large"})
            zones = list(g.get("zones") or [f"{region}a"])
            declared = [n for n in declared_nodes if n.get("autoscaling_group") == g["name"]]
            hi = max(int(g.get("max", g.get("desired", 1))), len(declared))
            asg.create_auto_scaling_group(
                AutoScalingGroupName=g["name"],
                LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
                MinSize=0, MaxSize=hi, DesiredCapacity=0, AvailabilityZones=zones,
                Tags=[{"Key": "kubeops.io/sandbox", "Value": "true", "PropagateAtLaunch": True}],
            )
            for count, spec in enumerate(declared, start=1):
                # moto launches into one zone of the group's list: narrow it to the node's zone for each launch
                asg.update_auto_scaling_group(AutoScalingGroupName=g["name"], DesiredCapacity=count,
                                              AvailabilityZones=[spec.get("zone") or zones[0]])
                self._adopt(cluster, g["name"], spec)
            asg.update_auto_scaling_group(
                AutoScalingGroupName=g["name"], AvailabilityZones=zones, MinSize=int(g.get("min", 0)),
                DesiredCapacity=max(int(g.get("desired", 0)), len(declared)))
            self._recreate_settings(asg, g)

    @staticmethod
    def _recreate_settings(asg: Any, g: dict[str, Any]) -> None:
        """A snapshot's group also brings its lifecycle hooks and suspended processes (moto stores, never honours)."""
        for hook in g.get("lifecycle_hooks") or ():
            kw: dict[str, Any] = {"AutoScalingGroupName": g["name"], "LifecycleHookName": hook["name"],
                                  "LifecycleTransition": hook.get("transition")
                                  or "autoscaling:EC2_INSTANCE_TERMINATING"}
            if hook.get("heartbeat_timeout_s"):
                kw["HeartbeatTimeout"] = int(hook["heartbeat_timeout_s"])
            if hook.get("default_result"):
                kw["DefaultResult"] = hook["default_result"]
            with contextlib.suppress(Exception):
                asg.put_lifecycle_hook(**kw)
        if g.get("suspended_processes"):
            with contextlib.suppress(Exception):
                asg.suspend_processes(AutoScalingGroupName=g["name"],
                                      ScalingProcesses=list(g["suspended_processes"]))

    def _adopt(self, cluster: Cluster, group: str, spec: dict[str, Any]) -> None:
        """Make the group's newest unadopted instance the declared node ``spec['name']``."""
        ec2, asg = self._aws(cluster)
        instances = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
        fresh = sorted(i["InstanceId"] for i in instances.get("Instances") or ()
                       if i["InstanceId"] not in self._instance_node)
        if not fresh:
            log.warning("no instance of %s left for node %s", group, spec["name"])
            return
        iid = fresh[0]
        info = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
        zone = (info.get("Placement") or {}).get("AvailabilityZone") or spec.get("zone")
        ip = info.get("PrivateIpAddress") or ""
        dns = info.get("PrivateDnsName") or ""
        keep_ip = bool(spec.get("internal_ip"))

        def adopt(o: dict[str, Any]) -> None:
            o["spec"]["providerID"] = f"aws:///{zone}/{iid}"
            o["metadata"]["labels"]["topology.kubernetes.io/zone"] = zone
            addresses = [a for a in (o.get("status") or {}).get("addresses") or ()
                         if a.get("type") != "InternalDNS" and not (a.get("type") == "InternalIP" and not keep_ip)]
            if not keep_ip and ip:
                addresses.insert(0, {"type": "InternalIP", "address": ip})
            if dns:
                addresses.append({"type": "InternalDNS", "address": dns})
            o.setdefault("status", {})["addresses"] = addresses

        if cluster.store.modify("nodes", None, spec["name"], adopt) is not None:
            self._instance_node[iid] = spec["name"]

    def _poll(self, cluster: Cluster, now: float) -> None:
        ec2, asg = self._aws(cluster)
        groups = {g["name"]: g for g in self._groups(cluster)}
        live: dict[str, tuple[str, dict[str, Any]]] = {}  # instance -> (group, asg instance)
        gone: set[str] = set()
        for g in asg.describe_auto_scaling_groups(AutoScalingGroupNames=list(groups))["AutoScalingGroups"]:
            for inst in g.get("Instances") or ():
                state = inst.get("LifecycleState") or ""
                if state == "InService":
                    live[inst["InstanceId"]] = (g["AutoScalingGroupName"], inst)
                elif state.startswith("Terminating"):
                    gone.add(inst["InstanceId"])
        details: dict[str, dict[str, Any]] = {}
        ids = sorted(set(live) | set(self._instance_node))
        if ids:
            try:
                pages = ec2.describe_instances(InstanceIds=ids)["Reservations"]
            except ec2.exceptions.ClientError:  # an id moto forgot: ask one by one
                pages = []
                for i in ids:
                    with contextlib.suppress(ec2.exceptions.ClientError):
                        pages.extend(ec2.describe_instances(InstanceIds=[i])["Reservations"])
            for res in pages:
                for inst in res.get("Instances") or ():
                    details[inst["InstanceId"]] = inst
        for iid, node in list(self._instance_node.items()):
            state = ((details.get(iid) or {}).get("State") or {}).get("Name", "terminated")
            if iid in gone or state in _GONE_STATES or iid not in details:
                self._remove_node(cluster, iid, node)
        for iid, (group, inst) in sorted(live.items()):
            info = details.get(iid)
            if info is None or iid in self._instance_node or iid in self._forgotten:
                continue
            if ((info.get("State") or {}).get("Name")) in _GONE_STATES:
                continue
            self._add_node(cluster, groups[group], inst, info, now)
        # Nodes deleted by someone else stay deleted while their instance lives.
        for iid, node in list(self._instance_node.items()):
            if cluster.store.try_get("nodes", None, node, copy=False) is None:
                del self._instance_node[iid]
                self._joining.pop(node, None)
                self._forgotten.add(iid)

    # -- cluster side ----------------------------------------------------------------------------------------
    def _add_node(self, cluster: Cluster, group: dict[str, Any], inst: dict[str, Any], info: dict[str, Any],
                  now: float) -> None:
        from kubeops.sandbox.scenario import node_object

        ip = info.get("PrivateIpAddress") or "10.0.0.1"
        name = info.get("PrivateDnsName") or f"ip-{ip.replace('.', '-')}.ec2.internal"
        zone = inst.get("AvailabilityZone") or (info.get("Placement") or {}).get("AvailabilityZone")
        spec = {"name": name, "zone": zone, "instance_type": inst.get("InstanceType") or group.get("instance_type"),
                "autoscaling_group": group["name"],
                **{k: v for k, v in (group.get("node") or {}).items() if v is not None}}
        ready = self._first_poll
        spec["ready"] = ready
        node = node_object(spec, kubelet_version=str(cluster.settings.get("kubelet_version", "v1.33.0")),
                           region=self._region(cluster), index=self._index, now_ts=rfc3339(now),
                           provider_id=f"aws:///{zone}/{inst['InstanceId']}",
                           internal_ip=info.get("PrivateIpAddress"))
        self._index += 1
        node["metadata"]["labels"][GROUP_LABEL] = group["name"]
        addresses = [{"type": "InternalIP", "address": info.get("PrivateIpAddress") or ""},
                     {"type": "InternalDNS", "address": name}, {"type": "Hostname", "address": name}]
        node.setdefault("status", {})["addresses"] = addresses
        if not ready:
            node["status"]["conditions"] = node_conditions(False, now)
        try:
            cluster.store.create("nodes", node)
        except ApiError as exc:
            if exc.code != 409:
                raise
        self._instance_node[inst["InstanceId"]] = name
        if not ready:
            self._joining[name] = now + float(cluster.settings.get("join_delay_s", 5))

    def _finish_joins(self, cluster: Cluster, now: float) -> None:
        for name, due in list(self._joining.items()):
            if due > now:
                continue
            del self._joining[name]

            def ready(o: dict[str, Any]) -> None:
                o.setdefault("status", {})["conditions"] = node_conditions(True, now)

            cluster.store.modify("nodes", None, name, ready)

    def _remove_node(self, cluster: Cluster, iid: str, node: str) -> None:
        del self._instance_node[iid]
        self._joining.pop(node, None)
        with contextlib.suppress(ApiError):
            cluster.store.delete("nodes", None, node)


def install(cluster: Cluster) -> None:
    """Register the AWS link (idle when the cluster has no moto URL or the scenario no groups)."""
    link = AwsLink()
    cluster.add_reconciler(link)
    cluster.on_prepare.append(lambda c: link.reconcile(c, c.clock.now()))
