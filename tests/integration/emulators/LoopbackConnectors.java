/*
 * Copyright: contributors to certdeploy.cloud
 * GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
 *
 * Test-harness helper for lowkey-vault (a Spring Boot app), compiled by lowkey.py
 * against the jars inside the lowkey-vault-app jar and added to it with
 * PropertiesLauncher's loader.path plus --spring.main.sources.
 *
 * lowkey-vault adds a second Tomcat connector (the plain-HTTP managed-identity
 * token endpoint, app.token.port) without an address, so it listens on every
 * interface; server.address only covers the main HTTPS connector.  This customizer
 * binds the additional connectors to the address in the system property
 * certdeploy.bind.address (default 127.0.0.1).
 */
package certdeploy.harness;

import java.net.InetAddress;
import java.net.UnknownHostException;

import org.apache.catalina.connector.Connector;
import org.apache.coyote.AbstractProtocol;
import org.springframework.boot.web.embedded.tomcat.TomcatServletWebServerFactory;
import org.springframework.boot.web.server.WebServerFactoryCustomizer;

public class LoopbackConnectors implements WebServerFactoryCustomizer<TomcatServletWebServerFactory> {

    @Override
    public void customize(final TomcatServletWebServerFactory factory) {
        final String address = System.getProperty("certdeploy.bind.address", "127.0.0.1");
        final InetAddress bind;
        try {
            bind = InetAddress.getByName(address);
        } catch (final UnknownHostException e) {
            throw new IllegalStateException("certdeploy.bind.address: cannot resolve " + address, e);
        }
        for (final Connector connector : factory.getAdditionalTomcatConnectors()) {
            if (connector.getProtocolHandler() instanceof AbstractProtocol<?> protocol) {
                protocol.setAddress(bind);
            } else {
                throw new IllegalStateException("unexpected Tomcat protocol handler: " + connector.getProtocolHandler());
            }
        }
        if (factory.getAddress() == null) {
            factory.setAddress(bind);
        }
    }
}
