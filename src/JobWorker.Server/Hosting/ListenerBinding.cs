using System.Net;
using System.Net.Sockets;
using JobWorker.Server.Configuration;
using Microsoft.AspNetCore.Connections;

namespace JobWorker.Server.Hosting;

/// <summary>
/// Names the setting behind a listener Kestrel cannot bind. Kestrel reports a port in use as "Failed to bind to
/// address …" and any other bind error (an address that is not this host's) as a bare SocketException without the
/// address; this wraps the transport so either reaches <c>Program</c> as a <see cref="ListenerBindException"/> that
/// says which address, which setting and why, printed as one line.
/// </summary>
internal static class ListenerBinding
{
    /// <summary>Wraps every registered connection listener factory (Kestrel's socket transport).</summary>
    /// <param name="services">The application's services, after Kestrel has been added.</param>
    /// <param name="listeners">Each configured address and the setting (and flag) that configures it.</param>
    public static void NameBindFailures(IServiceCollection services, IReadOnlyList<(ListenAddress Address, string Setting)> listeners)
    {
        for (var i = 0; i < services.Count; i++)
        {
            var descriptor = services[i];
            if (descriptor.ServiceType != typeof(IConnectionListenerFactory) || descriptor.IsKeyedService)
            {
                continue;
            }

            services[i] = ServiceDescriptor.Singleton<IConnectionListenerFactory>(sp => new NamingListenerFactory(
                (IConnectionListenerFactory)(descriptor.ImplementationInstance
                    ?? descriptor.ImplementationFactory?.Invoke(sp)
                    ?? ActivatorUtilities.CreateInstance(sp, descriptor.ImplementationType!)),
                listeners));
        }
    }

    private sealed class NamingListenerFactory(IConnectionListenerFactory inner, IReadOnlyList<(ListenAddress Address, string Setting)> listeners)
        : IConnectionListenerFactory, IConnectionListenerFactorySelector
    {
        public bool CanBind(EndPoint endpoint) => inner is not IConnectionListenerFactorySelector selector || selector.CanBind(endpoint);

        public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.BindAsync(endpoint, cancellationToken).ConfigureAwait(false);
            }
            catch (AddressInUseException e)
            {
                // Kept an AddressInUseException: Kestrel turns it into the IOException that stops the start (for
                // localhost too, rather than going on with the other loopback address).
                throw new AddressInUseException(e.Message, Describe(endpoint, "the port is in use by another program (is another JobWorker.Server running?)", e));
            }
            catch (SocketException e)
            {
                // Not an IOException: for localhost, Kestrel then tolerates one of its two addresses failing (a host
                // without IPv6) and reports only both.
                throw Describe(endpoint, e.SocketErrorCode == SocketError.AddressNotAvailable
                    ? "the address is not one of this host's"
                    : e.Message, e);
            }
        }

        private ListenerBindException Describe(EndPoint endpoint, string reason, Exception inner)
        {
            var ip = endpoint as IPEndPoint;
            var (address, setting) = listeners.FirstOrDefault(l => ip is not null && l.Address.Port == ip.Port
                && (l.Address.IsLocalhost ? IPAddress.IsLoopback(ip.Address) : l.Address.Address!.Equals(ip.Address)));
            return address is null
                ? new ListenerBindException($"cannot listen on {endpoint}: {reason}", inner)
                : new ListenerBindException($"cannot listen on {address} ({setting}): {reason}", inner);
        }
    }
}

/// <summary>A configured listener cannot be bound; the message names the address, the setting and the reason.</summary>
public sealed class ListenerBindException : InvalidOperationException
{
    public ListenerBindException()
    {
    }

    public ListenerBindException(string message)
        : base(message)
    {
    }

    public ListenerBindException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>The first <see cref="ListenerBindException"/> in <paramref name="exception"/> and its inner exceptions.</summary>
    public static ListenerBindException? Find(Exception? exception) => exception switch
    {
        null => null,
        ListenerBindException bind => bind,
        AggregateException aggregate => aggregate.InnerExceptions.Select(Find).FirstOrDefault(found => found is not null),
        _ => Find(exception.InnerException),
    };
}
