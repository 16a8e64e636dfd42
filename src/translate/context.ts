/** What translators need besides the model; all of it decided outside them. */
export interface TranslateContext {
  /** The node whose Envoy is served (for nodeSelector). */
  nodeName: string;
  /**
   * The node-local port for a listener that has no address of its own. Must return
   * the same port for the same key on every call and across agent restarts.
   */
  proxyPort(listenerKey: string): number;
  /**
   * The node addresses such listeners bind (IPv4, plus IPv6 as an additional
   * address): where the datapath sends L7-redirected connections. Default loopback.
   */
  proxyAddresses?: { v4: string; v6: string };
}
