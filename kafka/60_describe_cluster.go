package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// codeUnsupportedEndpointType is Kafka's UNSUPPORTED_ENDPOINT_TYPE.
const codeUnsupportedEndpointType int16 = 115

// DescribeCluster lists the brokers (every node with a Kafka listener), the cluster
// id and the controller, as Metadata does. There are no separate controllers.
func handleDescribeCluster(ctx context.Context, c *conn, kreq kmsg.Request) func() kmsg.Response {
	req := kreq.(*kmsg.DescribeClusterRequest)
	return func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
		resp.EndpointType = req.EndpointType
		if req.Version >= 1 && req.EndpointType != 1 {
			resp.ErrorCode = codeUnsupportedEndpointType
			return resp
		}
		cl, err := c.b.Cluster(ctx, []string{})
		if err != nil {
			resp.ErrorCode, resp.ErrorMessage = code(err), message(err)
			return resp
		}
		resp.ClusterID, resp.ControllerID = cl.ClusterID, cl.ControllerID
		for _, b := range cl.Brokers {
			rb := kmsg.NewDescribeClusterResponseBroker()
			rb.NodeID, rb.Host, rb.Port = b.ID, b.Host, b.Port
			resp.Brokers = append(resp.Brokers, rb)
		}
		return resp
	}
}
